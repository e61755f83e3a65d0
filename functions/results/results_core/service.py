"""One results call, independent of the fdk: method, URL, headers and body in; status, body, headers out.

Routes, by the end of the request's path (each is an HTTP trigger in func.yaml; openapi.json
describes them): ``/results`` (list), ``/results/one``, ``/results/gallery``, ``/results/openapi.json``
and ``/results/docs``. An ``/invoke`` call (no URL) is a list whose parameters are the body's JSON
object. With AUTH_TOKEN set, everything but the API description needs the token (fnvision_common.access).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fnvision_common.access import TOKEN_COOKIE, bearer_matches, cookie_matches, token_matches
from fnvision_common.fnedge import JSON_TYPE, Reply, json_reply

from . import pages
from .documents import find_one
from .errors import BadQueryError, MethodNotAllowedError, NotFoundError, ResultsError, UnauthorizedError
from .listing import Lister, Mapper
from .query import parse_query
from .settings import Settings
from .store import Reader

HTML_TYPE = "text/html; charset=utf-8"
LIST, ONE, GALLERY, OPENAPI, DOCS = "list", "one", "gallery", "openapi", "docs"
_ROUTES = {"results": LIST, "one": ONE, "gallery": GALLERY, "openapi.json": OPENAPI, "docs": DOCS}
PUBLIC = (OPENAPI, DOCS)
"""Routes served without the token: the API description holds nothing private."""
HTML_HEADERS = {
    "Content-Type": HTML_TYPE,
    # Thumbnails come from the object store's host (presigned URLs); nothing else is loaded.
    "Content-Security-Policy": "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
COOKIE_SECONDS = 12 * 3600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A call as the service sees it: ``url`` is None for ``/invoke`` calls."""

    method: str
    url: str | None
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def gateway(self) -> bool:
        return self.url is not None

    def route(self) -> str:
        if self.url is None:
            return LIST
        path = urlsplit(self.url).path.rstrip("/")
        route = _ROUTES.get(path.rsplit("/", 1)[-1])
        if route is None:
            raise NotFoundError(f"no route {path[-80:]!r}: see openapi.json")
        return route

    def params(self) -> dict[str, list[str]]:
        if self.url is not None:
            return parse_qs(urlsplit(self.url).query, keep_blank_values=True)
        if not self.body.strip():
            return {}
        try:
            given = json.loads(self.body)
        except ValueError as exc:
            raise BadQueryError("an /invoke body is a JSON object of list parameters") from exc
        if not isinstance(given, dict):
            raise BadQueryError("an /invoke body is a JSON object of list parameters")
        return {str(k): [str(v)] for k, v in given.items() if v is not None}


@dataclass(frozen=True)
class Deps:
    """What a call needs from the container."""

    settings: Settings
    get_reader: Callable[[], Reader]
    mapper: Mapper = map
    """Maps the document reads of a page (func.py: a thread pool's ``map``)."""


def _json(status: int, document: Any, headers: Mapping[str, str] | None = None) -> Reply:
    reply = json_reply(status, document)
    return replace(reply, headers={**reply.headers, **(headers or {})})


def _html(status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, text.encode("utf-8"), {**HTML_HEADERS, **(headers or {})})


def _check_access(request: Request, route: str, token: str) -> Reply | None:
    """None when the call may go on; a redirect that sets the cookie for a gallery opened with ``?token=``."""
    if not token or not request.gateway or route in PUBLIC:
        return None
    given = request.params().get("token")
    if route == GALLERY and given:
        if not token_matches(given[-1], token):
            raise UnauthorizedError("wrong token")
        assert request.url is not None
        parts = urlsplit(request.url)
        rest = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items() if k != "token"}
        location = "gallery" + (f"?{urlencode(rest, doseq=True)}" if rest else "")
        cookie_path = parts.path.rstrip("/").rsplit("/", 1)[0] or "/"
        secure = "; Secure" if parts.scheme == "https" else ""
        cookie = f"{TOKEN_COOKIE}={token}; Path={cookie_path}; Max-Age={COOKIE_SECONDS}; HttpOnly; SameSite=Lax{secure}"
        return Reply(303, b"", {"Location": location, "Set-Cookie": cookie, "Cache-Control": "no-store"})
    if bearer_matches(request.headers, token) or cookie_matches(request.headers, token):
        return None
    raise UnauthorizedError("missing or wrong `Authorization: Bearer` token")


def _lister(deps: Deps) -> Lister:
    s = deps.settings
    return Lister(deps.get_reader(), s.results_bucket, s.results_prefix, deps.mapper)


def _serve(request: Request, route: str, deps: Deps) -> Reply:
    s = deps.settings
    if route == OPENAPI:
        return Reply(200, pages.openapi_text().encode("utf-8"), {"Content-Type": JSON_TYPE})
    if route == DOCS:
        return _html(200, pages.docs())
    params = request.params()
    if route == ONE:
        get = {name: (params.get(name) or [""])[-1].strip() or None for name in
               ("bucket", "key", "etag", "model", "model_version")}
        if not get["bucket"] or not get["key"]:
            raise BadQueryError("one needs bucket and key")
        item = find_one(deps.get_reader(), s.results_bucket, s.results_prefix, get["bucket"], get["key"],
                        get["etag"], get["model"], get["model_version"])
        return _json(200, item.to_json(s.results_bucket))
    if route == GALLERY:
        query = parse_query(params, s.gallery_limit)
        reader = deps.get_reader()
        page = _lister(deps).run(query)
        html = pages.gallery(page, query, lambda bucket, key: reader.presign(bucket, key, s.presign_seconds))
        return _html(200, html, {"Cache-Control": "no-store"})  # its presigned URLs expire
    query = parse_query(params, s.list_limit)
    page = _lister(deps).run(query)
    return _json(200, {
        "items": [item.to_json(s.results_bucket) for item in page.items],
        "next_page_token": page.next_page_token,
        "query": query.public(),
    })


def handle(request: Request, deps: Deps) -> Reply:
    """Answer one call; every failure becomes its JSON error (an HTML page for the gallery)."""
    route = GALLERY if request.url is not None and request.url.split("?", 1)[0].endswith("/gallery") else None
    try:
        route = request.route()
        if request.gateway and request.method.upper() not in ("GET", "HEAD"):
            raise MethodNotAllowedError(f"{request.method} is not served here: use GET")
        redirect = _check_access(request, route, deps.settings.auth_token)
        return redirect or _serve(request, route, deps)
    except ResultsError as exc:
        log.warning("call failed", extra={"code": exc.code, "status": int(exc.status), "why": exc.message})
        return error_reply(exc, html=route == GALLERY)


def error_reply(exc: ResultsError, html: bool = False) -> Reply:
    """The error body of docs/contracts.md §6 with its real status (an HTML page for a browser's gallery)."""
    extra = {"Allow": "GET, HEAD"} if isinstance(exc, MethodNotAllowedError) else {}
    if isinstance(exc, UnauthorizedError):
        extra["WWW-Authenticate"] = "Bearer"
    if html:
        hint = "Open this page once as gallery?token=<AUTH_TOKEN>; it then remembers the token." \
            if isinstance(exc, UnauthorizedError) else None
        page = pages.message(f"{int(exc.status)} {exc.code}", exc.message, hint)
        return _html(int(exc.status), page, extra)
    return _json(int(exc.status), exc.to_body(), extra)

