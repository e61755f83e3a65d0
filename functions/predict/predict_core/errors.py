"""Errors of the predict function: one hierarchy, each class fixes its HTTP status and stable code.

This module is the only place where a failure gets its status and its code; ``service.py`` turns
any ``PredictError`` into ``{"error": {"code", "message"}}`` and ``fnstatus.wire_status`` (synced
from ``common/``) decides what the fdk may put on the wire (Fn keeps only 200/502/504).

    PredictError (500 internal_error)
    ├── RequestError (400 invalid_payload)            the caller sent something we cannot use
    │   ├── EmptyBodyError (400 empty_body)
    │   ├── UnknownPayloadError (400 unknown_payload) none of the formats of contracts.md §3
    │   ├── InvalidParameterError (400 invalid_parameter)   top_k, sources, outputs, ...
    │   ├── PayloadTooLargeError (413 payload_too_large)    JSON body over MAX_JSON_BYTES
    │   └── TensorError (422 invalid_tensor)
    │       ├── ShapeError (422 invalid_shape)
    │       ├── DTypeError (422 invalid_dtype)
    │       └── ValueRangeError (422 invalid_value)    NaN/inf or outside 0..255
    ├── ConfigError (500 config_error)                a config key has a value we cannot use
    ├── ModelError (503 model_unavailable)            model files missing or not loadable
    │   └── ModelCorruptError (500 model_corrupt)     sha256 does not match the manifest
    ├── StorageUnavailableError (502 storage_unavailable)  results (or model) store unreachable
    └── RecordRefusedError (422 record_refused)       the store refused one result write (a 4xx
                                                      no retry can change): that object's outcome
"""

from __future__ import annotations

from http import HTTPStatus

from fnvision_common.errors import FnVisionError


class PredictError(FnVisionError):
    """Base of every error predict reports to its caller."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"


class RequestError(PredictError):
    """The request cannot be used (client error, retrying the same request will not help)."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_payload"


class EmptyBodyError(RequestError):
    """The request has no body."""

    code = "empty_body"


class UnknownPayloadError(RequestError):
    """The body is none of the supported formats."""

    code = "unknown_payload"


class InvalidParameterError(RequestError):
    """A request option (top_k, sources, requested outputs, ...) is invalid."""

    code = "invalid_parameter"


class PayloadTooLargeError(RequestError):
    """A JSON body too big to parse within the function's memory (binary formats have no such limit)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class TensorError(RequestError):
    """The image tensor does not fit the model."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_tensor"


class ShapeError(TensorError):
    """Wrong rank, size or channel count."""

    code = "invalid_shape"


class DTypeError(TensorError):
    """A data type other than uint8 or float32."""

    code = "invalid_dtype"


class ValueRangeError(TensorError):
    """Values outside 0..255 or not finite."""

    code = "invalid_value"


class ConfigError(PredictError):
    """A configuration key has a value we cannot use."""

    code = "config_error"


class ModelError(PredictError):
    """The model cannot be found or loaded."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_unavailable"


class ModelCorruptError(ModelError):
    """A model artifact does not match the sha256 in its manifest: refuse to serve it."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "model_corrupt"


class StorageUnavailableError(PredictError):
    """Object storage could not be reached or refused the request."""

    status = HTTPStatus.BAD_GATEWAY
    code = "storage_unavailable"


class RecordRefusedError(PredictError):
    """The store refused to write one result document (a 4xx such as KeyTooLongError).

    Retrying cannot change it, so it is that object's permanent outcome (answered per image; the
    caller records a failure), never a 502 that would make the event source deliver it for ever.
    """

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "record_refused"
