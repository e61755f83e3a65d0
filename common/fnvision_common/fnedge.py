"""The Fn edge both ``func.py`` share: request headers in, a ``Reply`` out as an fdk response.

The fdk hands a handler its headers with some values as lists (header collisions) and, for HTTP
triggers (``Fn-Intent: httprequest``), puts the status it is given into ``Fn-Http-Status``; the status
on the wire must then follow ``fnstatus.wire_status``. Each function's core answers a call with a
``Reply`` (the real status, never the wire one); an error's reply is built here once, with the body
of docs/contracts.md §6. fdk is imported when a response is built, so that the triggers and tools can
import this package without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fnvision_common.errors import FnVisionError
from fnvision_common.fnstatus import wire_status

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Reply:
    """What a handler sends back: the real HTTP status (``respond`` puts Fn's on the wire), body, headers."""

    status: int
    body: bytes
    headers: dict[str, str]


def json_reply(status: int, document: Any) -> Reply:
    """A JSON reply, compact UTF-8 (values the JSON encoder does not know are written as strings)."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return Reply(status, body, {"Content-Type": JSON_TYPE})


def error_reply(error: FnVisionError, **extra: Any) -> Reply:
    """The reply to a failed call: the error's status, ``{"error": {"code", "message"}}`` plus ``extra``."""
    return json_reply(int(error.status), {**error.to_body(), **extra})


def request_headers(ctx: Any) -> dict[str, str]:
    """Lower-case header names, one string per header (in gateway mode Fn-Http-H-* are unwrapped already)."""
    raw = ctx.Headers() or {}
    return {str(k).lower(): str(v[0] if isinstance(v, list) and v else v) for k, v in raw.items()}


def is_gateway(headers: Mapping[str, str]) -> bool:
    """True for HTTP-trigger calls (the real status then travels in Fn-Http-Status)."""
    return headers.get("fn-intent") == "httprequest"


def respond(ctx: Any, reply: Reply, gateway: bool) -> Any:
    """An fdk Response with the real status in Fn-Http-Status (gateway) and Fn's rule on the wire."""
    from fdk import response

    resp = response.Response(ctx, response_data=reply.body, headers=dict(reply.headers), status_code=reply.status)
    resp.status_code = wire_status(reply.status, gateway)
    return resp
