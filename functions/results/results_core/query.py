"""A list query: its parameters, the one index listing that answers it, and its page tokens.

Each query is answered from one family of the result index (fnvision_common.result_index), picked by
its most selective filter; the other filters are read off the entry keys as they are listed (no
document is fetched to reject an entry, except one whose document key had to be hashed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from fnvision_common import result_index as ri

from .errors import BadQueryError
from .settings import MAX_LIMIT

TOP1 = "top1"
TOPK = "topk"
STATUSES = (ri.CLASSIFIED, ri.FAILED)


@dataclass(frozen=True)
class Query:
    """What a list or gallery call asks for (every filter optional)."""

    bucket: str | None = None
    prefix: str | None = None
    label: str | None = None
    label_in: str = TOP1
    """``top1``: the label is the first prediction; ``topk``: it is among the indexed ones (result_index)."""
    model: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    limit: int = 50
    page_token: str | None = None

    def public(self) -> dict[str, Any]:
        """The query as answered back (times in RFC 3339)."""
        out = asdict(self)
        for name in ("since", "until"):
            out[name] = ri.format_time(out[name]) if out[name] else None
        return out

    def fingerprint(self) -> str:
        """What a page token is bound to: every filter, not the limit or the token."""
        filters = {k: v for k, v in self.public().items() if k not in ("limit", "page_token")}
        return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise BadQueryError(f"{name} is given {len(values)} times")
    value = values[0].strip() if values else ""
    return value or None


def _time(params: Mapping[str, list[str]], name: str) -> datetime | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        return ri.parse_time(text)
    except ValueError as exc:
        raise BadQueryError(f"{name}={text[:60]!r} is not an RFC 3339 time") from exc


def parse_query(params: Mapping[str, list[str]], default_limit: int) -> Query:
    """Read a query from URL parameters (``parse_qs`` form); ``BadQueryError`` says what is wrong."""
    limit_text = _one(params, "limit") or str(default_limit)
    try:
        limit = int(limit_text)
    except ValueError as exc:
        raise BadQueryError(f"limit={limit_text[:20]!r} is not an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQueryError(f"limit must be between 1 and {MAX_LIMIT}")
    label_in = _one(params, "label_in") or TOP1
    if label_in not in (TOP1, TOPK):
        raise BadQueryError(f"label_in must be {TOP1} or {TOPK}")
    status = _one(params, "status")
    if status is not None and status not in STATUSES:
        raise BadQueryError(f"status must be one of {', '.join(STATUSES)}")
    query = Query(
        bucket=_one(params, "bucket"),
        prefix=_one(params, "prefix"),
        label=_one(params, "label"),
        label_in=label_in,
        model=_one(params, "model"),
        model_version=_one(params, "model_version"),
        since=_time(params, "since"),
        until=_time(params, "until"),
        status=status,
        limit=limit,
        page_token=_one(params, "page_token"),
    )
    if query.prefix and not query.bucket:
        raise BadQueryError("prefix needs bucket (source keys are indexed per bucket)")
    if query.model_version and not query.model:
        raise BadQueryError("model_version needs model")
    if query.since and query.until and query.since > query.until:
        raise BadQueryError("since is after until")
    return query


@dataclass(frozen=True)
class Plan:
    """The listing that answers a query: where it starts, and which entries of it match."""

    listing: str
    """The family prefix listed (result_index.family_prefix)."""
    ranked: bool
    start_after: str
    empty: bool = False
    """True when no record can match (a label asked of failures)."""


def plan(query: Query, prefix: str) -> Plan:
    """Pick the family for a query (label > failures > model version > source folder > all)."""
    if query.label:
        listing, ranked = ri.family_prefix(prefix, ri.LABEL, ri.label_segment(query.label)), True
    elif query.status == ri.FAILED:
        listing, ranked = ri.family_prefix(prefix, ri.FAILED_FAMILY), False
    elif query.model and query.model_version:
        listing, ranked = ri.family_prefix(prefix, ri.MODEL, ri.model_segment(query.model, query.model_version)), False
    elif query.bucket:
        folder = ri.deepest_indexed_folder(query.prefix or "")
        listing, ranked = ri.family_prefix(prefix, ri.SOURCE, ri.source_value(query.bucket, folder)), False
    else:
        listing, ranked = ri.family_prefix(prefix, ri.ALL), False
    # Entries at or before `until` have a rev at or above rev(until): start after every key of the
    # rev just below. Not `StartAfter=<listing><rev>`: SeaweedFS skips the whole "folder" of that rev then.
    start_after = ""
    if query.until and int(ri.rev(query.until)) > 0:
        start_after = f"{listing}{int(ri.rev(query.until)) - 1:013d}~"
    if query.page_token:
        start_after = max(start_after, read_token(query.page_token, query, listing))
    return Plan(listing, ranked, start_after, empty=bool(query.label and query.status == ri.FAILED))


def entry_matches(query: Query, entry: ri.Entry) -> bool:
    """Whether an entry can be in the answer, from its key alone (unknown parts are checked on the document)."""
    if query.label and query.label_in == TOP1 and entry.rank != 1:
        return False
    if query.status and entry.status not in (None, query.status):
        return False
    model = entry.model
    if query.model and entry.document is not None:
        if model is None or model[0] != query.model or (query.model_version and model[1] != query.model_version):
            return False
    source = entry.source
    if query.bucket and source is not None and source[0] != query.bucket:
        return False
    if query.prefix and source is not None and source[1] is not None:
        return source[1].startswith(query.prefix)
    return True


def document_matches(query: Query, document: Mapping[str, Any]) -> bool:
    """The filters again on the document (for entries whose key could not say: hashed or fixed-length)."""
    record = ri.record_of(document, "")
    if query.status and record.status != query.status:
        return False
    if query.model and (record.model is None or record.model[0] != query.model):
        return False
    if query.model_version and (record.model is None or record.model[1] != query.model_version):
        return False
    if query.bucket and record.source_bucket != query.bucket:
        return False
    return not (query.prefix and not record.source_key.startswith(query.prefix))


def make_token(last_key: str, query: Query) -> str:
    """An opaque token: where the next page starts, bound to this query's filters."""
    raw = json.dumps({"after": last_key, "q": query.fingerprint()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(token: str, query: Query, listing: str) -> str:
    """The start key in a token made for this query ( ``BadQueryError`` otherwise)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after, bound = data["after"], data["q"]
    except (ValueError, binascii.Error, KeyError, TypeError) as exc:
        raise BadQueryError("page_token is not one this API gave") from exc
    if not isinstance(after, str) or bound != query.fingerprint() or not after.startswith(listing):
        raise BadQueryError("page_token belongs to another query")
    return after
