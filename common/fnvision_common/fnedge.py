"""The Fn edge both ``func.py`` share: request headers in, a response with Fn's wire status out.

The fdk hands a handler its headers with some values as lists (header collisions) and, for HTTP
triggers (``Fn-Intent: httprequest``), puts the status it is given into ``Fn-Http-Status``; the status
on the wire must then follow ``fnstatus.wire_status``. fdk is imported when a response is built, so
that the triggers and tools can import this package without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fnvision_common.fnstatus import wire_status


def request_headers(ctx: Any) -> dict[str, str]:
    """Lower-case header names, one string per header (in gateway mode Fn-Http-H-* are unwrapped already)."""
    raw = ctx.Headers() or {}
    return {str(k).lower(): str(v[0] if isinstance(v, list) and v else v) for k, v in raw.items()}


def is_gateway(headers: Mapping[str, str]) -> bool:
    """True for HTTP-trigger calls (the real status then travels in Fn-Http-Status)."""
    return headers.get("fn-intent") == "httprequest"


def respond(ctx: Any, status: int, body: bytes | str, headers: Mapping[str, str], gateway: bool) -> Any:
    """An fdk Response with the real status in Fn-Http-Status (gateway) and Fn's rule on the wire."""
    from fdk import response

    resp = response.Response(ctx, response_data=body, headers=dict(headers), status_code=status)
    resp.status_code = wire_status(status, gateway)
    return resp
