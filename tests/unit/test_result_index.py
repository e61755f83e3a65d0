"""The result index's layout and its write protocol (fnvision_common.result_index)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fnvision_common import result_index as ri
from fnvision_common.result_keys import failure_key, result_key

WHEN = datetime(2026, 11, 21, 12, 17, 37, 123000, tzinfo=UTC)


def result_doc(key: str = "cats/a/b/c/chelsea.jpg", labels=("tiger cat", "tabby", "Egyptian cat"), when=WHEN):
    return {
        "schema": ri.RESULT_SCHEMA,
        "source": {"bucket": "images", "key": key, "etag": "e1"},
        "predictions": [{"index": i, "label": label, "score": 0.5} for i, label in enumerate(labels)],
        "model": {"name": "efficientnet-lite0", "version": "1.0.0"},
        "recorded_at": ri.format_time(when),
    }


class Store:
    """Conditional puts in memory; `down` makes every write of a key containing it fail."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down: str | None = None
        self.puts = 0

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        self.puts += 1
        if self.down and self.down in key:
            raise ConnectionError("store down")
        if key in self.objects:
            return False
        self.objects[key] = body
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get(key)


def test_rev_sorts_newest_first_and_reads_back() -> None:
    later = WHEN + timedelta(milliseconds=1)
    assert ri.rev(later) < ri.rev(WHEN) and len(ri.rev(WHEN)) == 13
    assert ri.moment_of(ri.rev(WHEN)) == WHEN


def test_entries_of_a_result_cover_every_family() -> None:
    key = result_key("p/", "images", "cats/a/b/c/chelsea.jpg", "e1", "efficientnet-lite0", "1.0.0")
    record = ri.record_of(result_doc(), ri.relative("p/", key))
    keys = [e.key for e in ri.entries("p/", record)]
    when = ri.rev(WHEN)
    doc = "images/cats/a/b/c/chelsea.jpg/e1/efficientnet-lite0@1.0.0.json"
    assert keys == [
        f"p/~index/all/{when}/{doc}",
        f"p/~index/label/tiger cat/{when}/1/{doc}",
        f"p/~index/label/tabby/{when}/2/{doc}",
        f"p/~index/label/egyptian cat/{when}/3/{doc}",
        f"p/~index/model/efficientnet-lite0@1.0.0/{when}/{doc}",
        f"p/~index/source/images/~/{when}/{doc}",
        f"p/~index/source/images/cats/~/{when}/{doc}",
        f"p/~index/source/images/cats/a/~/{when}/{doc}",
        f"p/~index/source/images/cats/a/b/~/{when}/{doc}",
    ]


def test_a_failure_record_is_listed_as_failed_without_labels_or_model() -> None:
    doc = {"schema": ri.FAILURE_SCHEMA, "source": {"bucket": "images", "key": "x.jpg", "etag": "e"},
           "error": {"code": "not_an_image"}, "recorded_at": "2026-11-21T12:00:00Z"}
    record = ri.record_of(doc, ri.relative("", failure_key("", "images", "x.jpg", "e")))
    families = sorted(e.key.split("/")[1] for e in ri.entries("", record))
    assert record.status == ri.FAILED and families == ["all", "failed", "source"]


def test_a_parsed_entry_gives_back_source_status_and_model() -> None:
    listing = ri.family_prefix("", ri.LABEL, ri.label_segment("Tabby"))
    key = f"{listing}{ri.rev(WHEN)}/2/images/cats/x y.jpg/e1/efficientnet-lite0@1.0.0.json"
    entry = ri.parse_entry(listing, key, ranked=True)
    assert entry is not None and entry.rank == 2 and entry.recorded_at == WHEN
    assert entry.source == ("images", "cats/x y.jpg") and entry.status == ri.CLASSIFIED
    assert entry.model == ("efficientnet-lite0", "1.0.0")
    failed = ri.parse_entry("~index/all/", f"~index/all/{ri.rev(WHEN)}/images/x.jpg/e/failure.json")
    assert failed is not None and failed.status == ri.FAILED and failed.model is None


@pytest.mark.parametrize("tail", ["~/0000000000000/images/x/e/failure.json", "123/images/x", "0000000000000/"])
def test_keys_that_are_not_entries_of_the_listing_are_skipped(tail: str) -> None:
    assert ri.parse_entry("~index/source/images/a/~/", "~index/source/images/a/~/" + tail) is None


def test_a_document_key_too_long_for_an_entry_is_hashed_and_carried_in_the_body() -> None:
    key = "f" * 400 + "/" + "k" * 440 + ".jpg"  # natural form, but its folder entry would not fit
    document = result_key("", "images", key, "e1", "m", "1")
    entries = ri.entries("", ri.record_of(result_doc(key=key), document))
    hashed = [e for e in entries if ri.HASHED in e.key]
    assert hashed and all(e.body == document.encode() and len(e.key) <= 1024 for e in hashed)
    listing = ri.family_prefix("", ri.SOURCE, ri.source_value("images", "f" * 400 + "/"))
    (folder_entry,) = [e for e in hashed if e.key.startswith(listing)]
    parsed = ri.parse_entry(listing, folder_entry.key)
    assert parsed is not None and parsed.document is None and parsed.status is None


def test_labels_are_matched_without_case_and_a_slash_cannot_split_them() -> None:
    assert ri.label_segment("  Egyptian Cat ") == "egyptian cat"
    assert "/" not in ri.label_segment("a/b") and ri.label_segment("50%") == "50%25"


def _write(store: Store, doc: dict, key: str, now: datetime = WHEN) -> bool:
    def put(document):
        return store.put_if_absent("results", key, json.dumps(document).encode())

    return ri.write_indexed(store, "results", "", key, lambda t: {**doc, "recorded_at": ri.format_time(t)}, now, put)


def test_a_record_is_claimed_indexed_then_committed_and_a_duplicate_adds_nothing() -> None:
    store = Store()
    key = result_key("", "images", "cats/a/b/c/chelsea.jpg", "e1", "efficientnet-lite0", "1.0.0")
    assert _write(store, result_doc(), key) is True
    written = dict(store.objects)
    assert key in written and ri.claim_key("", key) in written
    assert len([k for k in written if k.startswith("~index/") and "/claim/" not in k]) == 9
    store.puts = 0
    assert _write(store, result_doc(), key, now=WHEN + timedelta(seconds=5)) is False
    assert store.objects == written and store.puts == 1  # the claim's 412, then the document is found


def test_a_retry_after_a_partial_failure_writes_the_same_entries_at_the_claimed_time() -> None:
    store = Store()
    key = result_key("", "images", "cats/a/b/c/chelsea.jpg", "e1", "efficientnet-lite0", "1.0.0")
    store.down = "~index/model/"
    with pytest.raises(ConnectionError):
        _write(store, result_doc(), key)
    assert key not in store.objects  # nothing committed
    store.down = None
    assert _write(store, result_doc(), key, now=WHEN + timedelta(minutes=3)) is True
    doc = json.loads(store.objects[key])
    assert doc["recorded_at"] == ri.format_time(WHEN)
    entries = [k for k in store.objects if k.startswith("~index/") and "/claim/" not in k]
    assert len(entries) == 9 and all(ri.rev(WHEN) in k for k in entries)


def test_source_folders_stop_at_the_indexed_depth() -> None:
    assert ri.source_folders("x.jpg") == [""]
    assert ri.source_folders("a/b/c/d/e.jpg") == ["", "a/", "a/b/", "a/b/c/"]
    assert ri.deepest_indexed_folder("a/b/c/d/e") == "a/b/c/"
    assert ri.deepest_indexed_folder("a/b") == "a/"
