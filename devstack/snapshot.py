"""A static copy of the live gallery: the page the results function serves, thumbnails inlined.

``make run`` ends with one (``.local/results/<run>/index.html``): it opens in a browser with no server,
and keeps showing that run after the presigned thumbnail URLs have expired. The page is the function's
own (one renderer); only each ``<img class="thumb" src=...>`` is replaced by a ``data:`` URI of the
image its presigned URL serves. Links and the filter form need the live gallery (``make serve``).
"""

from __future__ import annotations

import base64
import html
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

_THUMB = re.compile(r'(<img class="thumb" src=")([^"]*)(")')


def _get(url: str, timeout: float) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - our own local stack's URLs
        return reply.read(), reply.headers.get_content_type()


def inline_thumbnails(page: str, timeout: float = 30.0) -> str:
    """Replace every thumbnail's URL with a ``data:`` URI of its bytes."""

    def inline(match: re.Match[str]) -> str:
        data, content_type = _get(html.unescape(match.group(2)), timeout)
        if not content_type.startswith("image/"):
            content_type = "image/jpeg"
        uri = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
        return f"{match.group(1)}{uri}{match.group(3)}"

    return _THUMB.sub(inline, page)


def write_snapshot(gallery_url: str, params: Mapping[str, str | int], out: Path, timeout: float = 60.0) -> Path:
    """Fetch the gallery page for ``params``, inline its thumbnails, write it to ``out``."""
    data, _ = _get(f"{gallery_url}?{urlencode(params)}", timeout)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(inline_thumbnails(data.decode("utf-8")), encoding="utf-8")
    return out
