"""Every error the preprocess function answers with: one tree, status and code fixed per class.

This is the only place where a failure gets its HTTP status and stable code (docs/contracts.md §6);
``func.py`` turns any ``PreprocessError`` into ``{"error": {"code", "message"}}`` with that status.

    PreprocessError (500 internal_error)
    ├── ConfigError                 500 config_error
    ├── BadEventError               400 bad_event
    ├── UnauthorizedError           401 unauthorized
    ├── ObjectNotFoundError         404 object_not_found
    ├── TooLargeError               413 too_large           (bytes over MAX_IMAGE_BYTES)
    │   ├── ImageTooLargeError      413 image_too_large     (header pixels over MAX_PIXELS)
    │   └── TooManyImagesError      413 too_many_images
    ├── ImageError                  415 not_an_image        (unknown format, empty, disallowed format)
    │   └── CorruptImageError       415 corrupt_image       (truncated / undecodable)
    ├── RefusedError                422 refused_url         (scheme, address, redirect)
    │   └── RefusedSourceError      422 refused_source      (object in the results area)
    ├── FetchError                  502 fetch_failed        (URL answered badly)
    │   └── FetchTimeoutError       504 fetch_timeout
    ├── StorageError                502 storage_error
    └── PredictError                502 predict_failed      (predict answered with an error)
        ├── PredictUnavailableError 502 predict_unavailable (retries exhausted)
        └── PredictTimeoutError     504 predict_timeout
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class PreprocessError(Exception):
    """Base of all expected failures; carries the HTTP status and a stable snake_case code."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The `{"code", "message"}` object used in error bodies and per-item answers."""
        return {"code": self.code, "message": self.message}


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


class TooLargeError(PreprocessError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class ImageTooLargeError(TooLargeError):
    code = "image_too_large"


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


class PredictError(PreprocessError):
    status = HTTPStatus.BAD_GATEWAY
    code = "predict_failed"


class PredictUnavailableError(PredictError):
    code = "predict_unavailable"


class PredictTimeoutError(PredictError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "predict_timeout"


def wire_status(status: int, gateway: bool) -> int:
    """The status the fdk sends to the Fn agent for an answer whose real status is ``status``.

    HTTP-trigger calls: always 200; the real status travels in ``Fn-Http-Status`` and the body
    survives. ``/invoke`` calls: the agent keeps only 200/502/504 and replaces the body of a 502/504,
    so client errors go out as 200 (the body carries the code) and server-side failures (predict or
    storage down, config) as 502/504, so that Fn records a failed call and event sources may retry.
    Same rule as predict.
    """
    if gateway:
        return 200
    if status == HTTPStatus.GATEWAY_TIMEOUT:
        return 504
    return 502 if status >= 500 else 200
