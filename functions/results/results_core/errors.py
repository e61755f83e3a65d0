"""The results function's errors, under the one base (fnvision_common.errors; docs/contracts.md §6).

    ResultsError (500 internal_error)
    ├── ConfigError          500 config_error
    ├── BadQueryError        400 bad_query         a parameter or page token we cannot use
    ├── UnauthorizedError    401 unauthorized      AUTH_TOKEN set, no or a wrong token
    ├── NotFoundError        404 not_found         no such route, or no record for that object
    ├── MethodNotAllowedError 405 method_not_allowed
    └── StorageError         502 storage_error     the store could not be read (a retry may work)
"""

from __future__ import annotations

from http import HTTPStatus

from fnvision_common.errors import FnVisionError


class ResultsError(FnVisionError):
    """Any expected failure of a results call."""


class ConfigError(ResultsError):
    code = "config_error"


class BadQueryError(ResultsError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_query"


class UnauthorizedError(ResultsError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class NotFoundError(ResultsError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class MethodNotAllowedError(ResultsError):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    code = "method_not_allowed"


class StorageError(ResultsError):
    status = HTTPStatus.BAD_GATEWAY
    code = "storage_error"
