"""Every error the preprocess function answers with: one tree, status and code fixed per class.

This is the only place where a failure gets its HTTP status and stable code (docs/contracts.md §6);
``edge.handle`` turns any ``PreprocessError`` into ``{"error": {"code", "message"}, "call_id"}`` with
that status (anything else into 500 ``internal_error``); ``fnstatus.wire_status`` (in ``common/``)
says what goes on the wire. Statuses >= 500 are *retryable*: on ``/invoke`` they fail the Fn call so that
event sources deliver again; 4xx are permanent and answered (and recorded) once.

    PreprocessError (500 internal_error)
    ├── ConfigError                 500 config_error
    ├── BadEventError               400 bad_event
    ├── UnauthorizedError           401 unauthorized
    ├── ObjectNotFoundError         404 object_not_found
    │   └── UrlNotFoundError        404 url_not_found       (URL answered 404/410)
    ├── TooLargeError               413 too_large           (bytes over MAX_IMAGE_BYTES)
    │   ├── ImageTooLargeError      413 image_too_large     (header pixels over MAX_PIXELS)
    │   │   └── DecodeKilledError   413 decode_killed       (its decode ended the container twice)
    │   └── TooManyImagesError      413 too_many_images
    ├── ImageError                  415 not_an_image        (unknown format, empty, disallowed format)
    │   └── CorruptImageError       415 corrupt_image       (truncated / undecodable)
    ├── RefusedError                422 refused_url         (scheme, address, redirect)
    │   ├── UnresolvableUrlError    422 unresolvable_url    (DNS failure / no address)
    │   └── RefusedSourceError      422 refused_source      (object in the results area)
    ├── FetchError                  502 fetch_failed        (URL answered badly)
    │   └── FetchTimeoutError       504 fetch_timeout
    ├── StorageError                502 storage_error       (S3 read/write failed: retryable)
    ├── RecordRefusedError          422 record_refused      (the store refused a write with a 4xx
    │                                                         no retry changes: permanent)
    ├── PredictRejectedError        422 predict_rejected    (predict refused the images: permanent)
    └── PredictCallError            502 predict_failed      (calling predict failed: server-side error or
        │                                                     an answer that is not predict's)
        ├── PredictUnavailableError 502 predict_unavailable (retries exhausted)
        └── PredictTimeoutError     504 predict_timeout
"""

from __future__ import annotations

from http import HTTPStatus

from fnvision_common.errors import FnVisionError


class PreprocessError(FnVisionError):
    """Base of all expected failures; carries the HTTP status and a stable snake_case code."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"


class ConfigError(PreprocessError):
    code = "config_error"


class BadEventError(PreprocessError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_event"


class UnauthorizedError(PreprocessError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class ObjectNotFoundError(PreprocessError):
    status = HTTPStatus.NOT_FOUND
    code = "object_not_found"


class UrlNotFoundError(ObjectNotFoundError):
    code = "url_not_found"


class TooLargeError(PreprocessError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class ImageTooLargeError(TooLargeError):
    code = "image_too_large"


class DecodeKilledError(ImageTooLargeError):
    """Decoding this object version ended its container before, repeatedly: it is not tried again."""

    code = "decode_killed"


class TooManyImagesError(TooLargeError):
    code = "too_many_images"


class ImageError(PreprocessError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "not_an_image"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class RefusedError(PreprocessError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "refused_url"


class UnresolvableUrlError(RefusedError):
    code = "unresolvable_url"


class RefusedSourceError(RefusedError):
    code = "refused_source"


class FetchError(PreprocessError):
    status = HTTPStatus.BAD_GATEWAY
    code = "fetch_failed"


class FetchTimeoutError(FetchError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "fetch_timeout"


class StorageError(PreprocessError):
    status = HTTPStatus.BAD_GATEWAY
    code = "storage_error"


class RecordRefusedError(PreprocessError):
    """The store refused to write a record (a 4xx such as KeyTooLongError): retrying cannot help."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "record_refused"


class PredictRejectedError(PreprocessError):
    """predict answered a client error (4xx: invalid_shape, invalid_value, ...): retrying cannot help."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "predict_rejected"


class PredictCallError(PreprocessError):
    """Calling predict failed (not predict's own ``PredictError``, which is any error predict answers)."""

    status = HTTPStatus.BAD_GATEWAY
    code = "predict_failed"


class PredictUnavailableError(PredictCallError):
    code = "predict_unavailable"


class PredictTimeoutError(PredictCallError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "predict_timeout"
