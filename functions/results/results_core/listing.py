"""Answer a list query: walk one index listing, keep the matching entries, fetch their documents.

Cost (README.md, "Results and what they cost"): one LIST for the first 2 × limit + 1 entries walked, one
more per 1,000 after that, one GET per document on the
page (fetched ``readers`` at a time), plus one GET per entry whose document key was hashed.
Entries are walked newest first; the walk stops at the page's last item, at ``since``, or after
``MAX_WALK`` entries (then the page may be short, and its token goes on from there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fnvision_common import result_index as ri

from .query import Plan, Query, document_matches, entry_matches, make_token, plan
from .store import Reader

MAX_WALK = 5000
"""Most entries one call walks (five LIST requests): bounds a call whose filters match little."""

log = logging.getLogger(__name__)

Mapper = Callable[[Callable[[str], dict[str, Any] | None], Iterable[str]], Iterator[dict[str, Any] | None]]


@dataclass(frozen=True)
class Item:
    """One record on a page: its document and where it is."""

    key: str
    """The document's key in the results bucket."""
    document: dict[str, Any]

    @property
    def status(self) -> str:
        return ri.FAILED if self.document.get("schema") == ri.FAILURE_SCHEMA else ri.CLASSIFIED

    def to_json(self, bucket: str) -> dict[str, Any]:
        """The item as the list and one answers carry it (docs/contracts.md §5)."""
        source = self.document.get("source") or {}
        return {
            "bucket": bucket,
            "key": self.key,
            "status": self.status,
            "recorded_at": self.document.get("recorded_at"),
            "source": {k: source.get(k) for k in ("bucket", "key", "etag")},
            "document": self.document,
        }


@dataclass(frozen=True)
class Page:
    """What a list call answers."""

    items: list[Item]
    next_page_token: str | None
    walked: int
    """Index entries walked (what the call cost in listing)."""


@dataclass(frozen=True)
class _Candidate:
    entry: ri.Entry
    document_key: str | None


class Lister:
    """Runs queries against one results location."""

    def __init__(self, reader: Reader, bucket: str, prefix: str, mapper: Mapper = map) -> None:
        self._reader = reader
        self._bucket = bucket
        self._prefix = prefix
        self._map = mapper

    def _document_key(self, entry: ri.Entry) -> str | None:
        rel = entry.document
        if rel is None:  # hashed: the entry's body holds the document key
            rel = self._reader.get_text(self._bucket, entry.key)
        if rel is None:
            return None
        prefix = self._prefix + "/" if self._prefix and not self._prefix.endswith("/") else self._prefix
        return prefix + rel

    def _resolve(self, query: Query, candidates: list[_Candidate]) -> list[Item]:
        keys = [c.document_key or "" for c in candidates]
        documents = list(self._map(lambda k: self._reader.get_json(self._bucket, k) if k else None, keys))
        items = []
        for candidate, document in zip(candidates, documents, strict=True):
            if document is None or candidate.document_key is None:
                continue  # a record being written (its document comes last), or a damaged entry
            try:
                matches = document_matches(query, document)
            except ValueError:
                matches = False
            if matches:
                items.append(Item(candidate.document_key, document))
        return items

    def run(self, query: Query) -> Page:
        """One page of the answer, newest first."""
        how: Plan = plan(query, self._prefix)
        if how.empty:
            return Page([], None, 0)
        # Twice the page (+1 to see whether more follow): enough unless filters drop more than half.
        listed = self._reader.keys(self._bucket, how.listing, how.start_after, first=2 * query.limit + 1)
        items: list[Item] = []
        walked = 0
        last = ""
        exhausted = True
        batch: list[_Candidate] = []
        # Bounds compare at the index's precision, milliseconds (recorded_at has microseconds).
        oldest = ri.rev(query.since) if query.since else None
        for key in listed:
            if len(items) + len(batch) >= query.limit or walked >= MAX_WALK:
                exhausted = False  # there is at least one more key: the next page starts after `last`
                break
            walked += 1
            entry = ri.parse_entry(how.listing, key, ranked=how.ranked)
            if entry is not None and oldest is not None and entry.rev > oldest:
                break  # newest first: everything after this is older still
            last = key
            if entry is None or not entry_matches(query, entry):
                continue
            batch.append(_Candidate(entry, self._document_key(entry)))
            if len(items) + len(batch) >= query.limit:
                items += self._resolve(query, batch)  # a missing document leaves room for the next entry
                batch = []
        items += self._resolve(query, batch)
        token = None if exhausted or not last else make_token(last, query)
        log.info("listed", extra={"listing": how.listing, "walked": walked, "items": len(items)})
        return Page(items[: query.limit], token, walked)

