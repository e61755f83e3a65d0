"""How a function's real HTTP status travels through Fn: the only definition.

Part of ``fnvision-common`` (``common/``), the package both functions install (common/README.md).

The fdk coerces every status but 200/502/504 to 200, and the Fn agent replaces the body of a 502
with ``{"message": "function failed"}``. So:

* HTTP-trigger calls (``Fn-Intent: httprequest``): wire status 200; the real status travels in
  ``Fn-Http-Status`` (the trigger turns it into the client's status) and the JSON error body survives;
* ``/invoke`` calls: client errors go out as 200 (the body carries the code), server-side failures
  as 502 (504 for timeouts), so that Fn records a failed call and an event source retries it.

A caller that may get the fdk's answer without a trigger in between reads the real status back with
``real_status`` (``Fn-Http-Status`` on a 2xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus


def wire_status(status: int, gateway: bool) -> int:
    """The status the fdk must send to the Fn agent for an answer whose real status is `status`."""
    if gateway:
        return 200
    if status == HTTPStatus.GATEWAY_TIMEOUT:
        return 504
    return 502 if status >= 500 else 200


FN_HTTP_STATUS = "fn-http-status"


def real_status(wire: int, headers: Mapping[str, str]) -> int:
    """The real status of an answer read off the wire: `Fn-Http-Status` on a 2xx (the fdk's gateway form), else
    the wire status. `headers` has lower-case names."""
    carried = headers.get(FN_HTTP_STATUS, "")
    return int(carried) if wire < 300 and carried.isdigit() else wire
