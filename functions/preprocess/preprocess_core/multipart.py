"""A small `multipart/form-data` parser (RFC 7578) for image uploads.

The stdlib ``cgi`` module is gone in Python 3.13 and ``email``'s parser rewrites line endings in
binary parts, so parts are split on the boundary here and only the part headers go through
``email`` (for the quoting rules of `Content-Disposition` parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP

from .errors import BadEventError

IMAGE_FIELDS = frozenset({"image", "images", "image[]"})
"""Form fields that carry images (`curl -F image=@cat.jpg`)."""


@dataclass(frozen=True)
class Part:
    """One form field."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str) -> str:
    """Return the boundary parameter of a multipart Content-Type header."""
    msg = Message()
    msg["Content-Type"] = content_type
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise BadEventError("multipart/form-data without a usable boundary")
    return boundary


def parse(body: bytes, content_type: str, max_parts: int = 64) -> list[Part]:
    """Split a multipart/form-data body into its parts."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    # Prefixing CRLF lets the first delimiter match the same pattern as the others.
    chunks = (b"\r\n" + body).split(b"\r\n" + delimiter)
    if len(chunks) < 2:
        raise BadEventError("multipart body does not contain its boundary")
    parts: list[Part] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise BadEventError("multipart part without a header/body separator")
        # Line after the delimiter: optional transport padding, then CRLF.
        head = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
        headers = BytesHeaderParser(policy=HTTP).parsebytes(head + b"\r\n\r\n")
        disposition = headers.get("Content-Disposition")
        if disposition is None:
            raise BadEventError("multipart part without Content-Disposition")
        msg = Message()
        msg["Content-Disposition"] = str(disposition)
        name = msg.get_param("name", header="content-disposition")
        filename = msg.get_filename()
        if not isinstance(name, str):
            raise BadEventError("multipart part without a field name")
        ctype = headers.get("Content-Type")
        parts.append(Part(name=name, filename=filename, content_type=str(ctype) if ctype else None, data=data))
        if len(parts) > max_parts:
            raise BadEventError(f"more than {max_parts} multipart parts")
    if not closed:
        raise BadEventError("multipart body is truncated (no closing boundary)")
    return parts


def image_parts(body: bytes, content_type: str, max_parts: int = 64) -> list[Part]:
    """Return the parts of the image field(s); a form without any is a bad request."""
    images = [p for p in parse(body, content_type, max_parts) if p.name in IMAGE_FIELDS]
    if not images:
        raise BadEventError("multipart/form-data without an `image` field")
    return images
