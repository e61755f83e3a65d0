"""The HTML pages, server-rendered with Jinja2 (autoescaped): the gallery and the API docs.

A card shows what a record says (labels and scores, capture time and camera from EXIF, model and
version, or a failure's code, message and stage) and, for results, the source image itself through a
presigned URL that expires after PRESIGN_SECONDS: no image is ever copied into the results area.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .listing import Item, Page
from .query import Query

OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"
"""The app's API description, kept in the repository (every HTTP trigger of preprocess, predict, results)."""
_METHODS = ("get", "post", "put", "delete", "patch", "head")


@functools.cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def card(item: Item, thumb: Callable[[str, str], str | None]) -> dict[str, Any]:
    """What one card shows (``thumb(bucket, key)`` gives the image URL, or None for no image)."""
    doc = item.document
    source = _mapping(doc.get("source"))
    exif, model, error = (_mapping(doc.get(name)) for name in ("exif", "model", "error"))
    camera = " ".join(t for t in (_text(exif.get("make")), _text(exif.get("model"))) if t)
    bucket, key = str(source.get("bucket", "")), str(source.get("key", ""))
    labels = [
        {"label": str(p.get("label", "")), "score": float(p.get("score", 0.0))}
        for p in doc.get("predictions") or ()
        if isinstance(p, Mapping) and isinstance(p.get("score"), int | float)
    ]
    failed = item.status == "failed"
    return {
        "status": item.status,
        "source_bucket": bucket,
        "source_key": key,
        "thumb": None if failed or not bucket or not key else thumb(bucket, key),
        "labels": labels[:5],
        # Models that are not classifiers (docs/contracts.md: regression results carry `outputs`).
        "outputs": None if labels or doc.get("outputs") is None else json.dumps(doc["outputs"])[:300],
        "model": " ".join(t for t in (_text(model.get("name")), _text(model.get("version"))) if t),
        "captured": _text(exif.get("datetime_original")),
        "camera": camera or None,
        "recorded_at": doc.get("recorded_at"),
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "stage": doc.get("stage"),
    }


def _href(base: str, query: Query, **changes: Any) -> str:
    params = {k: v for k, v in query.public().items() if v not in (None, "") and k != "page_token"}
    if params.get("label_in") == "top1":
        del params["label_in"]
    params.update({k: v for k, v in changes.items() if v is not None})
    return f"{base}?{urlencode(params)}" if params else base


def gallery(page: Page, query: Query, thumb: Callable[[str, str], str | None], live: bool = True) -> str:
    """The gallery page for one page of results (``live=False``: a snapshot, without links or forms)."""
    links = None
    if live:
        links = {
            "self": "gallery",
            "first": _href("gallery", query),
            "next": _href("gallery", query, page_token=page.next_page_token) if page.next_page_token else None,
            "api": _href("../results", query),
            "docs": "docs",
        }
    cards = [card(item, thumb) for item in page.items]
    return _env().get_template("gallery.html").render(cards=cards, query=query, links=links)


@functools.cache
def openapi_text() -> str:
    """openapi.json as kept in the repository."""
    return OPENAPI_FILE.read_text(encoding="utf-8")


def _resolve(spec: Mapping[str, Any], node: Any) -> Any:
    """Replace local ``$ref``s (``#/components/...``) so the template sees plain objects."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve(spec, target)
        return {k: _resolve(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v) for v in node]
    return node


@functools.cache
def docs() -> str:
    """The docs page: every operation of openapi.json, its parameters, bodies and answers."""
    spec = json.loads(openapi_text())
    paths = {path: _resolve(spec, item) for path, item in spec["paths"].items()}
    view = {**spec, "paths": paths}
    return _env().get_template("docs.html").render(spec=view, methods=_METHODS, openapi_url="openapi.json")


def message(title: str, text: str, hint: str | None = None) -> str:
    """A page that only says something (an error of the gallery, in a browser)."""
    return _env().get_template("message.html").render(title=title, message=text, hint=hint)
