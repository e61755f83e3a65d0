"""The optional bearer token of the HTTP triggers (AUTH_TOKEN): one check for every function.

With ``AUTH_TOKEN`` set, an HTTP-trigger call (``Fn-Intent: httprequest``) must carry
``Authorization: Bearer <token>``; ``/invoke`` calls are authenticated by the platform (Fn, OCI IAM).
A browser cannot send that header to a page it opens, so the results function also accepts the token
in the HttpOnly cookie ``TOKEN_COOKIE`` it sets when a page is opened once with ``?token=``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

AUTH_TOKEN = "AUTH_TOKEN"
TOKEN_COOKIE = "fnvision_token"


def token_matches(given: str, token: str) -> bool:
    """Compare in constant time (the token is a secret)."""
    return hmac.compare_digest(given.strip().encode(), token.encode())


def bearer_matches(headers: Mapping[str, str], token: str) -> bool:
    """True when ``authorization`` (lower-case header names) is ``Bearer <token>``."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(value, token)


def cookie_matches(headers: Mapping[str, str], token: str) -> bool:
    """True when the ``cookie`` header carries TOKEN_COOKIE with the token."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return False
    morsel = jar.get(TOKEN_COOKIE)
    return morsel is not None and token_matches(morsel.value, token)
