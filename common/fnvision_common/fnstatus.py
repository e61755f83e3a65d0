"""How a function's real HTTP status travels through Fn: the only definition.

Part of ``fnvision-common`` (``common/``), the package both functions install (common/README.md).

The fdk coerces every status but 200/502/504 to 200, and the Fn agent replaces the body of a 502
with ``{"message": "function failed"}``. So:

* HTTP-trigger calls (``Fn-Intent: httprequest``): wire status 200; the real status travels in
  ``Fn-Http-Status`` (the trigger turns it into the client's status) and the JSON error body survives;
* ``/invoke`` calls: client errors go out as 200 (the body carries the code), server-side failures
  as 502 (504 for timeouts), so that Fn records a failed call and an event source retries it.
"""

from __future__ import annotations

from http import HTTPStatus


def wire_status(status: int, gateway: bool) -> int:
    """The status the fdk must send to the Fn agent for an answer whose real status is `status`."""
    if gateway:
        return 200
    if status == HTTPStatus.GATEWAY_TIMEOUT:
        return 504
    return 502 if status >= 500 else 200
