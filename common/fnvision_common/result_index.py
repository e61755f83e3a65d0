"""The result index: small objects that make the common queries of results prefix listings.

Part of ``fnvision-common``: predict (result documents) and preprocess (failure records) write it
through ``write_record``; the results function reads it (``family_prefix``, ``parse_entry``). This
module is the only definition of its layout (docs/contracts.md §5).

A result document lives in the folder of its source object version (``result_keys``); listing those
folders by label or date would mean reading every document. So, at record time, each document gets
empty *entry* objects under ``{RESULTS_PREFIX}~index/``, one per way of finding it, whose keys say
everything a listing needs:

    ~index/all/{rev}/{doc}                       every record, newest first
    ~index/label/{label}/{rev}/{rank}/{doc}      each of the first INDEXED_LABELS labels (rank 1 = top-1)
    ~index/failed/{rev}/{doc}                    failure records
    ~index/model/{name}@{version}/{rev}/{doc}    results of one model version
    ~index/source/{bucket}/{folder}~/{rev}/{doc} the source bucket (folder ``""``) and up to
                                                 INDEXED_FOLDERS folders of the source key

``rev`` is ``9999999999999 - recorded_at in ms`` (13 digits), so S3's ascending listing is newest
first and a time range is a start key plus a stop key. ``doc`` is the document's key below the
results prefix (``{bucket}/{key}/{etag}/{name}@{version}.json`` or ``.../failure.json``), from which
bucket, key, status and model are read without fetching the document. An entry key over 1,024 bytes
takes ``~sha256/{hex of doc}`` there instead, and the entry's body holds ``doc``. ``~`` cannot start
a bucket name, so ``~index/`` never meets a result folder (nor ``~long/``, the fixed-length form).

Writing (``write_record``) keeps the documents' idempotence: the record's time is fixed by a *claim*
(``~index/claim/{sha256 of the document key}``, a conditional put holding ``recorded_at``), then every
entry is put conditionally, and the document last. The document is the commit: once it exists, all
its entries do. A retry after a partial failure finds the claim, keeps its time, and so writes the
same keys (412 for those already there); a duplicate finds the document and writes nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from fnvision_common.result_keys import FAILURE_NAME, LONG_FOLDER, MAX_KEY_BYTES

RESULT_SCHEMA = "fn-vision/result@1"
FAILURE_SCHEMA = "fn-vision/failure@1"
INDEX_FOLDER = "~index"
INDEXED_LABELS = 5
"""Labels of a result that get an entry (top-1 first): "in top-k" means within these."""
INDEXED_FOLDERS = 3
"""Folders of a source key that get an entry, from the bucket's root down; deeper prefixes are
filtered from the deepest indexed folder above them."""
CLASSIFIED = "classified"
FAILED = "failed"
ALL = "all"
LABEL = "label"
FAILED_FAMILY = "failed"
MODEL = "model"
SOURCE = "source"
CLAIM = "claim"
FOLDER_END = "~"
"""Ends a folder in a ``source`` entry, so that a folder's listing does not run into its subfolders'."""
HASHED = "~sha256/"
_REV_SPAN = 10**13
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAFE = " -_.,'()&+@!$*=:;"
"""Characters kept as they are in a label or model segment (``/`` and ``%`` are quoted, so a segment is one folder)."""


class IndexStore(Protocol):
    """Conditional writes and plain reads of small objects (each function adapts its S3 store)."""

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Write ``body`` unless ``key`` exists; True if written. Raises the function's storage errors."""
        ...

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        ...


def rev(moment: datetime) -> str:
    """The newest-first sort key of a moment: 13 digits, ``9999999999999 - epoch milliseconds``."""
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    return f"{_REV_SPAN - 1 - ms:013d}"


def moment_of(rev_text: str) -> datetime:
    """The moment (ms precision, UTC) a ``rev`` stands for."""
    return _EPOCH + timedelta(milliseconds=_REV_SPAN - 1 - int(rev_text))


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset; no offset means UTC) as an aware datetime."""
    moment = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` (the form of ``recorded_at``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def label_segment(label: str) -> str:
    """A label as it appears in entry keys: lower case (label filters ignore case), ``/`` and ``%`` quoted."""
    return quote(label.strip().lower(), safe=_SAFE)


def model_segment(name: str, version: str) -> str:
    """``{name}@{version}`` as it appears in entry keys."""
    return quote(f"{name}@{version}", safe=_SAFE)


def _folder_prefix(prefix: str) -> str:
    """RESULTS_PREFIX as result_keys uses it: a folder (``/`` added when missing)."""
    return prefix + "/" if prefix and not prefix.endswith("/") else prefix


def _index_root(prefix: str) -> str:
    return f"{_folder_prefix(prefix)}{INDEX_FOLDER}/"


def family_prefix(prefix: str, family: str, value: str = "") -> str:
    """The listing prefix of one family (``value``: a label/model segment, or ``{bucket}/{folder}``)."""
    root = _index_root(prefix)
    if family == ALL or family == FAILED_FAMILY:
        return f"{root}{family}/"
    if family == SOURCE:
        return f"{root}{SOURCE}/{value}{FOLDER_END}/"
    return f"{root}{family}/{value}/"


def source_value(bucket: str, folder: str) -> str:
    """The ``source`` family value of a bucket and a folder of keys (``""`` or ending in ``/``)."""
    return f"{bucket}/{folder}"


@dataclass(frozen=True)
class Record:
    """What the index says about one document, all read from the document itself."""

    document: str
    """The document's key below the results prefix."""
    recorded_at: datetime
    status: str
    """``classified`` or ``failed``."""
    source_bucket: str
    source_key: str
    labels: tuple[str, ...] = ()
    model: tuple[str, str] | None = None


def record_of(document: Mapping[str, Any], document_rel: str) -> Record:
    """Read the indexed facts of a result document or failure record (``ValueError`` if it has none)."""
    source = document.get("source")
    recorded = document.get("recorded_at")
    if not isinstance(source, Mapping) or not isinstance(recorded, str):
        raise ValueError("a record needs source and recorded_at")
    failed = document.get("schema") == FAILURE_SCHEMA
    labels: list[str] = []
    for item in document.get("predictions") or ():
        if isinstance(item, Mapping) and isinstance(item.get("label"), str) and item["label"].strip():
            labels.append(item["label"])
    model = document.get("model")
    name_version = None
    if not failed and isinstance(model, Mapping) and model.get("name") and model.get("version"):
        name_version = (str(model["name"]), str(model["version"]))
    return Record(
        document=document_rel,
        recorded_at=parse_time(recorded),
        status=FAILED if failed else CLASSIFIED,
        source_bucket=str(source.get("bucket", "")),
        source_key=str(source.get("key", "")),
        labels=tuple(labels[:INDEXED_LABELS]),
        model=name_version,
    )


def source_folders(key: str) -> list[str]:
    """The folders of a source key that get an entry: ``""`` (the bucket) and up to INDEXED_FOLDERS more."""
    parts = key.split("/")[:-1]
    return [""] + ["/".join(parts[: i + 1]) + "/" for i in range(min(len(parts), INDEXED_FOLDERS))]


def deepest_indexed_folder(prefix: str) -> str:
    """The deepest indexed folder that holds every key starting with ``prefix``."""
    folders = source_folders(prefix)
    return folders[-1]


@dataclass(frozen=True)
class EntryObject:
    """One entry to write: its key and body (empty unless the document's key is hashed)."""

    key: str
    body: bytes = b""


def _entry(head: str, tail: str, document_rel: str) -> EntryObject:
    key = f"{head}{tail}{document_rel}"
    if len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES:
        return EntryObject(key)
    digest = hashlib.sha256(document_rel.encode("utf-8", "surrogatepass")).hexdigest()
    return EntryObject(f"{head}{tail}{HASHED}{digest}", document_rel.encode("utf-8", "surrogatepass"))


def entries(prefix: str, record: Record) -> list[EntryObject]:
    """Every entry of one record (docs in this module's docstring); heads too long to hold are left out."""
    when = rev(record.recorded_at)
    doc = record.document
    out = [_entry(family_prefix(prefix, ALL), f"{when}/", doc)]
    for rank, label in enumerate(record.labels, start=1):
        out.append(_entry(family_prefix(prefix, LABEL, label_segment(label)), f"{when}/{rank}/", doc))
    if record.status == FAILED:
        out.append(_entry(family_prefix(prefix, FAILED_FAMILY), f"{when}/", doc))
    if record.model is not None:
        out.append(_entry(family_prefix(prefix, MODEL, model_segment(*record.model)), f"{when}/", doc))
    for folder in source_folders(record.source_key):
        out.append(_entry(family_prefix(prefix, SOURCE, source_value(record.source_bucket, folder)), f"{when}/", doc))
    # A head near 1,024 bytes (a very long label or folder) leaves no room even for the hashed form.
    return [e for e in out if len(e.key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES]


@dataclass(frozen=True)
class Entry:
    """One listed entry, parsed back from its key."""

    key: str
    rev: str
    """The entry's sort key (``rev`` of its record's time): compare bounds with it, not with times."""
    recorded_at: datetime
    rank: int | None
    """For ``label`` entries: the label's place in the predictions (1 = top-1)."""
    document: str | None
    """The document's key below the results prefix; None when hashed (read the entry's body)."""

    @property
    def status(self) -> str | None:
        """``classified``/``failed`` from the document's name (None while it is hashed)."""
        if self.document is None:
            return None
        return FAILED if self.document.endswith("/" + FAILURE_NAME) else CLASSIFIED

    @property
    def model(self) -> tuple[str, str] | None:
        """(name, version) from the document's name, for results."""
        if self.document is None or self.status != CLASSIFIED:
            return None
        name, _, version = self.document.rsplit("/", 1)[-1].removesuffix(".json").rpartition("@")
        return (name, version) if name else None

    @property
    def source(self) -> tuple[str, str | None] | None:
        """(bucket, key) from the document's key; the key is None in the fixed-length form (a hash)."""
        if self.document is None:
            return None
        if self.document.startswith(LONG_FOLDER + "/"):
            return self.document.split("/", 2)[1], None
        bucket, _, rest = self.document.partition("/")
        folder = rest.rsplit("/", 1)[0]  # {key}/{etag}
        return bucket, folder.rsplit("/", 1)[0]


def parse_entry(listing_prefix: str, key: str, *, ranked: bool = False) -> Entry | None:
    """Parse a key listed under ``listing_prefix`` (None for anything that is not an entry of it,
    such as the entries of a subfolder whose name holds ``~/``)."""
    if not key.startswith(listing_prefix):
        return None
    tail = key[len(listing_prefix) :]
    when, _, rest = tail.partition("/")
    if len(when) != 13 or not when.isdigit():
        return None
    rank = None
    if ranked:
        rank_text, _, rest = rest.partition("/")
        if not rank_text.isdigit():
            return None
        rank = int(rank_text)
    if not rest:
        return None
    document = None if rest.startswith(HASHED) else rest
    return Entry(key=key, rev=when, recorded_at=moment_of(when), rank=rank, document=document)


def claim_key(prefix: str, document_key: str) -> str:
    """The key of a document's claim (fixed length, whatever the document's key)."""
    digest = hashlib.sha256(document_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_index_root(prefix)}{CLAIM}/{digest}"


def relative(prefix: str, document_key: str) -> str:
    """A document's key below the results prefix."""
    prefix = _folder_prefix(prefix)
    return document_key[len(prefix) :] if prefix and document_key.startswith(prefix) else document_key


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def write_indexed(
    index: IndexStore,
    bucket: str,
    prefix: str,
    document_key: str,
    build: Callable[[datetime], Mapping[str, Any]],
    now: datetime,
    put_document: Callable[[Mapping[str, Any]], bool],
    run: Callable[[Callable[[EntryObject], bool], Iterable[EntryObject]], Iterator[bool]] = map,
) -> bool:
    """Write a document and its index entries once; True if this call created the document.

    ``build(recorded_at)`` makes the document; ``recorded_at`` is ``now`` unless an earlier attempt
    claimed the record (then its time, so that the entry keys are the same). ``put_document`` is the
    function's own conditional put of the document (its encoding, its errors); ``run`` maps the entry
    writes (``executor.map`` writes them in parallel). Storage errors propagate: nothing is committed
    until the document is written, and the next attempt completes what this one left.
    """
    claim = claim_key(prefix, document_key)
    if index.put_if_absent(bucket, claim, _dump({"recorded_at": format_time(now), "document": document_key})):
        recorded_at = now
    else:
        if index.get_bytes(bucket, document_key) is not None:
            return False  # committed by an earlier call: a duplicate adds nothing
        recorded_at = _claimed_time(index.get_bytes(bucket, claim), now)
    document = build(recorded_at)
    record = record_of(document, relative(prefix, document_key))
    list(run(lambda e: index.put_if_absent(bucket, e.key, e.body), entries(prefix, record)))
    return put_document(document)


def _claimed_time(body: bytes | None, fallback: datetime) -> datetime:
    try:
        return parse_time(json.loads(body or b"")["recorded_at"])
    except (ValueError, KeyError, TypeError):
        return fallback  # a claim that vanished or was damaged: this attempt's time
