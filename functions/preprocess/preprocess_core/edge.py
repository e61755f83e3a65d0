"""preprocess's HTTP edge, independent of the fdk: one call (method, headers, body) → a ``Reply``.

This is the one place where a failure becomes the call's answer (docs/contracts.md §6): a
``PreprocessError`` → its status and ``{"error": {"code", "message"}, "call_id"}``, anything else →
500 ``internal_error`` with the traceback in the log. Before any work, the edge checks the bearer
token of HTTP-trigger calls (``AUTH_TOKEN``) and answers webhook liveness probes; the request is
parsed with the settings' limits and results area, and the cold call's answer tells what starting
the container cost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fnvision_common.access import bearer_matches
from fnvision_common.fnedge import Reply, error_reply, is_gateway, json_reply

from . import service
from .deps import Deps
from .errors import PreprocessError, UnauthorizedError
from .events import parse_request

log = logging.getLogger("preprocess")
LIVENESS = {"ok": True, "function": "preprocess"}


@dataclass(frozen=True)
class Call:
    """One call as the fdk hands it over."""

    method: str
    headers: Mapping[str, str]
    """Lower-cased names (``fnedge.request_headers``)."""
    body: bytes
    call_id: str | None
    cold: bool
    """The first call of its container, which builds the ``Deps``."""


def handle(call: Call, get_deps: Callable[[], Deps]) -> Reply:
    """Answer one call; never raises."""
    try:
        deps = get_deps()
        gateway = is_gateway(call.headers)
        check_auth(call.headers, deps.settings.auth_token, gateway)
        if gateway and not call.body and call.method.upper() in ("GET", "HEAD"):
            return json_reply(200, LIVENESS)  # webhook liveness probes
        settings = deps.settings
        request = parse_request(
            call.body,
            call.headers,
            max_images=settings.max_images,
            default_bucket=settings.input_bucket,
            results=(settings.results_bucket, settings.results_prefix),
        )
        answer = service.run(request, deps, call.call_id)
    except PreprocessError as exc:
        log.warning("request failed", extra={"code": exc.code, "status": int(exc.status), "why": exc.message})
        return error_reply(exc, call_id=call.call_id)
    except Exception as exc:  # a bug: answer in our format (500 → 502 on /invoke) instead of the fdk's
        log.exception("unexpected error", extra={"code": "internal_error"})
        unexpected = PreprocessError(f"unexpected {type(exc).__name__}; see the log of this call")
        return error_reply(unexpected, call_id=call.call_id)
    answer["cold_start"] = call.cold
    if call.cold:
        answer["timings"]["init_ms"] = deps.init_ms
    return json_reply(200, answer)


def check_auth(headers: Mapping[str, str], token: str, gateway: bool) -> None:
    """With AUTH_TOKEN set, HTTP-trigger calls must send `Authorization: Bearer <token>`.

    ``fn invoke`` calls are authenticated by the platform (Fn's API, OCI request signing).
    """
    if token and gateway and not bearer_matches(headers, token):
        raise UnauthorizedError("missing or wrong `Authorization: Bearer` token")
