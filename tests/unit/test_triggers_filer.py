"""Filer-event filtering with payloads captured from a real SeaweedFS 4.48 (trimmed)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import pytest
from fnvision_common.filer_events import entry_etag
from fnvision_common.objects import ObjectRef

from tests.data.event_samples import load_json, parse
from triggers import filer_adapter
from triggers.events import OCI_CREATE, OCI_UPDATE
from triggers.filer_adapter import FilerAdapter
from triggers.filer_events import FilerChange, notification_toml, parse_filer_event
from triggers.invoker import InvokeError, InvokeResult


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _file(name: str, body: bytes, *, etag: str | None = None, md5: bool = True, mime: str = "image/jpeg",
          ) -> dict[str, Any]:
    digest = hashlib.md5(body).digest()
    attrs: dict[str, Any] = {"file_size": len(body), "mtime": 1795262930, "file_mode": 432, "mime": mime}
    if md5:
        attrs["md5"] = base64.b64encode(digest).decode()
    extended = {"Seaweed-X-Amz-Owner": "YWRtaW4="}
    if etag is not None:
        extended["Seaweed-X-Amz-ETag"] = _b64(etag)
    return {"name": name, "chunks": [{"size": len(body)}], "attributes": attrs, "extended": extended}


def _event(kind: str, key: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None,
           parent: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"delete_chunks": True, "signatures": [-212783783]}
    if new is not None:
        message["new_entry"] = new
        message["new_parent_path"] = parent or key.rsplit("/", 1)[0]
    if old is not None:
        message["old_entry"] = old
    return {"event_type": kind, "key": key, "message": message}


MD5_HELLO = hashlib.md5(b"hello").hexdigest()
DIRECTORY = {"name": "in", "is_directory": True, "attributes": {"mtime": 1, "file_mode": 2147484153}}


@pytest.mark.parametrize("key", ["cat.jpg", "in/sp ace+plus é.jpg", "a/b/c/日本.png"])
def test_create_becomes_one_change_with_the_raw_key(key: str) -> None:
    event = _event("create", f"/buckets/images/{key}", _file(key.rsplit("/")[-1], b"hello", etag=MD5_HELLO))
    change = parse_filer_event(event)
    assert change == FilerChange(OCI_CREATE, ObjectRef("images", key, MD5_HELLO, 5, "image/jpeg"))


def test_etag_from_extended_attr_then_md5() -> None:
    assert entry_etag(_file("x", b"hello", etag=f'"{MD5_HELLO}"')) == MD5_HELLO
    assert entry_etag(_file("x", b"hello")) == MD5_HELLO  # md5 attribute, base64 -> hex
    multipart = _file("big.bin", b"x", etag="16cafe8d6b8c1c55c3d339c8d69326c6-2", md5=False)
    assert entry_etag(multipart) == "16cafe8d6b8c1c55c3d339c8d69326c6-2"
    assert entry_etag(_file("x", b"hello", md5=False)) == ""


@pytest.mark.parametrize(("event", "reason"), [
    (_event("delete", "/buckets/images/a.jpg", None, old=_file("a.jpg", b"hello")), "event delete"),
    (_event("create", "/buckets/images/in", DIRECTORY), "directory"),
    (_event("create", "/buckets/images", {**DIRECTORY, "name": "images"}), "directory"),
    (_event("create", "/buckets/.system/log/x", _file("x", b"1")), "internal path"),
    (_event("create", "/buckets/images/.uploads/6cba_10f4/0001_55e9.part", _file("0001_55e9.part", b"p")),
     "multipart part or version internals"),
    (_event("create", "/buckets/images/k.jpg.versions/v1", _file("v1", b"p")),
     "multipart part or version internals"),
    (_event("create", "/buckets/images/.fn-vision-ready", _file(".fn-vision-ready", b"")), "readiness probe"),
    (_event("create", "/buckets/results/images/a.jpg/e/m@1.json", _file("m@1.json", b"{}")), "results area"),
    (_event("create", "/etc/x", _file("x", b"1")), "outside /buckets"),
    (_event("update", "/buckets/images/a.jpg", _file("a.jpg", b"hello", etag=MD5_HELLO),
            old=_file("a.jpg", b"hello", etag=MD5_HELLO)), "metadata-only update"),
])
def test_ignored_events(event: dict[str, Any], reason: str) -> None:
    assert parse_filer_event(event) == reason


def test_bucket_allow_list_and_results_prefix() -> None:
    event = _event("create", "/buckets/other/a.jpg", _file("a.jpg", b"hello", etag=MD5_HELLO))
    assert parse_filer_event(event, buckets={"images"}) == "bucket not watched"
    shared = _event("create", "/buckets/data/out/a.json", _file("a.json", b"{}"))
    assert parse_filer_event(shared, results_bucket="data", results_prefix="out/") == "results area"
    assert isinstance(parse_filer_event(shared, results_bucket="data", results_prefix="res/"), FilerChange)


def test_overwrite_is_an_update_with_the_new_etag() -> None:
    new_md5 = hashlib.md5(b"hello2").hexdigest()
    event = _event("update", "/buckets/images/a.jpg", _file("a.jpg", b"hello2", etag=new_md5),
                   old=_file("a.jpg", b"hello", etag=MD5_HELLO))
    change = parse_filer_event(event)
    assert isinstance(change, FilerChange) and change.event_type == OCI_UPDATE and change.ref.etag == new_md5


def test_rename_uses_the_new_location() -> None:
    event = _event("rename", "/buckets/images/tmp/a.jpg", _file("b.jpg", b"hello", etag=MD5_HELLO),
                   old=_file("a.jpg", b"hello"), parent="/buckets/images/final")
    change = parse_filer_event(event)
    assert isinstance(change, FilerChange) and change.ref.key == "final/b.jpg"


@pytest.mark.parametrize("name", ["seaweedfs-filer-create.http", "seaweedfs-filer-directory.http"])
def test_adapter_and_preprocess_read_a_recorded_event_alike(name: str) -> None:
    # one reading (fnvision_common.filer_events): the adapter forwards what preprocess would take itself
    payload = load_json(name)
    change = parse_filer_event(payload)
    parsed = parse(payload)
    if isinstance(change, str):
        assert change == "directory" and parsed.inputs == [] and parsed.ignored[0].reason == "internal_path"
        return
    (ref,) = parsed.inputs
    assert isinstance(ref, ObjectRef)
    assert replace(ref, event_type=None, origin="request") == change.ref
    assert change.ref == ObjectRef("images", "in/a+b c.jpg", "443d7348fd4e746fb3034d92ec4b543a", 64, "image/jpeg")


@pytest.mark.parametrize("payload", [
    {"event_type": "create", "key": "/buckets/images/a.jpg", "message": "x"},
    {"event_type": ["create"], "key": "/buckets/images/a.jpg"},
    _event("create", "/buckets/images/a.jpg", {**_file("a.jpg", b"hello"), "extended": {"Seaweed-X-Amz-ETag": 7}}),
])
def test_malformed_events_are_refused_not_a_crash(payload: dict[str, Any]) -> None:
    adapter = FilerAdapter(Recorder())
    status, text = adapter.handle(payload)
    assert status == 400 and text.startswith("malformed event") and adapter.stats.ignored == 1


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.bodies: list[bytes] = []
        self.fail = fail

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        if self.fail:
            raise InvokeError("http://x", 3, "refused")
        self.bodies.append(body)
        return InvokeResult(200, b"{}")


def test_adapter_retries_itself_dedupes_and_reports_deliveries() -> None:
    # the filer dead-letters an event whose webhook call failed, so the adapter must retry itself
    event = _event("create", "/buckets/images/a.jpg", _file("a.jpg", b"hello", etag=MD5_HELLO))
    delivered: list[ObjectRef] = []
    adapter = FilerAdapter(Recorder(fail=True), retry_backoff_s=0.01, on_delivered=delivered.extend)
    assert adapter.handle(event) == (202, "preprocess unreachable: queued for retry")
    assert adapter.pending_retries() == 1
    assert adapter.handle(event) == (200, "duplicate")  # a redelivery while queued
    adapter.invoker = ok = Recorder()
    with adapter:
        deadline = time.monotonic() + 10
        while adapter.pending_retries() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(ok.bodies) == 1 and adapter.pending_retries() == 0
    assert delivered == [ObjectRef("images", "a.jpg", MD5_HELLO, 5, "image/jpeg")]
    assert adapter.handle(event) == (200, "duplicate")


def test_adapter_gives_up_after_retry_window() -> None:
    event = _event("create", "/buckets/images/b.jpg", _file("b.jpg", b"hello", etag=MD5_HELLO))
    adapter = FilerAdapter(Recorder(fail=True), retry_backoff_s=0.01, retry_for_s=0.05)
    with adapter:
        adapter.handle(event)
        deadline = time.monotonic() + 10
        while adapter.pending_retries() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert adapter.pending_retries() == 0 and adapter.stats.sent == 0
    adapter.invoker = Recorder()
    assert adapter.handle(event) == (200, "sent")  # released: a later event is not a "duplicate"


def test_notification_toml_is_what_weed_expects() -> None:
    text = notification_toml("http://127.0.0.1:9/filer", path_prefixes=["/buckets/images/"], bearer_token="t")
    assert "[notification.webhook]" in text and "enabled = true" in text
    assert 'endpoint = "http://127.0.0.1:9/filer"' in text
    assert 'path_prefixes = ["/buckets/images/"]' in text and 'bearer_token = "t"' in text


class FakeHead:
    """A boto3 stand-in for HEAD: answers from a dict, counts calls, can fail."""

    def __init__(self, etags: dict[str, str], error: Exception | None = None) -> None:
        self.etags, self.error, self.calls = etags, error, 0

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3 names
        self.calls += 1
        if self.error is not None:
            raise self.error
        if Key not in self.etags:
            raise _not_found()
        return {"ETag": f'"{self.etags[Key]}"'}


def _not_found() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")


def _wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_event_without_etag_and_without_client_is_queued_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an event whose entry carries neither the ETag attribute nor md5, and no S3 client yet
    event = _event("create", "/buckets/images/n.jpg", _file("n.jpg", b"hello", md5=False))
    ok = Recorder()
    adapter = FilerAdapter(ok, retry_backoff_s=0.01)
    # WHEN the filer posts it: an error answer, an error log, and the event stays queued
    with caplog.at_level(logging.ERROR, logger="triggers.filer_adapter"):
        status, text = adapter.handle(event)
    assert status == 503 and "queued for retry" in text
    assert "no ETag" in caplog.text and "n.jpg" in caplog.text
    assert adapter.pending_retries() == 1 and adapter.stats.unresolved == 1 and ok.bodies == []
    # THEN once a client exists the retry HEADs the object and delivers it with the real ETag, once
    adapter.client = head = FakeHead({"n.jpg": MD5_HELLO})
    with adapter:
        _wait_until(lambda: adapter.pending_retries() == 0)
    assert head.calls == 1 and len(ok.bodies) == 1
    sent = json.loads(ok.bodies[0])["data"]
    assert (sent["resourceName"], sent["additionalDetails"]["eTag"]) == ("n.jpg", MD5_HELLO)
    assert adapter.handle(_event("create", "/buckets/images/n.jpg", _file("n.jpg", b"hello", etag=MD5_HELLO))
                          ) == (200, "duplicate")


def test_event_without_etag_is_headed_when_a_client_exists() -> None:
    ok = Recorder()
    adapter = FilerAdapter(ok, client=FakeHead({"h.jpg": MD5_HELLO}))
    assert adapter.handle(_event("create", "/buckets/images/h.jpg", _file("h.jpg", b"hello", md5=False))
                          ) == (200, "sent")
    assert json.loads(ok.bodies[0])["data"]["additionalDetails"]["eTag"] == MD5_HELLO
    # an object deleted before we could HEAD it has nothing to classify
    assert adapter.handle(_event("create", "/buckets/images/gone.jpg", _file("gone.jpg", b"x", md5=False))
                          ) == (200, "ignored: object no longer exists")
    assert adapter.pending_retries() == 0 and len(ok.bodies) == 1


def test_failed_head_is_queued_and_given_up_only_after_the_window() -> None:
    ok = Recorder()
    adapter = FilerAdapter(ok, client=FakeHead({}, error=ConnectionError("storage down")),
                           retry_backoff_s=0.01, retry_for_s=0.1)
    assert adapter.handle(_event("create", "/buckets/images/f.jpg", _file("f.jpg", b"x", md5=False)))[0] == 503
    with adapter:
        _wait_until(lambda: adapter.pending_retries() == 0)
    assert adapter.stats.given_up == 1 and ok.bodies == []
    assert adapter.client.calls >= 2  # it kept trying


def test_bearer_token_is_checked_in_constant_time_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = filer_adapter.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(filer_adapter.hmac, "compare_digest", spy)
    ok = Recorder()
    event = json.dumps(_event("create", "/buckets/images/t.jpg", _file("t.jpg", b"hello", etag=MD5_HELLO)))

    def post(adapter: FilerAdapter, auth: str | None) -> int:
        request = urllib.request.Request(adapter.url, data=event.encode(), method="POST",
                                         headers={"Authorization": auth} if auth else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    with FilerAdapter(ok, bearer_token="s3cret") as adapter:
        assert post(adapter, None) == 401
        assert post(adapter, "Bearer s3cre") == 401
        assert post(adapter, "Bearer s3cret-and-more") == 401
        assert ok.bodies == []
        assert post(adapter, "Bearer s3cret") == 200
    assert len(ok.bodies) == 1
    assert compared and all(b == b"Bearer s3cret" for _, b in compared)


def test_adapter_memory_stays_bounded_by_dedupe_size() -> None:
    adapter = FilerAdapter(Recorder(), dedupe_size=10)
    for i in range(50):
        adapter.handle(_event("create", f"/buckets/images/{i}.jpg", _file(f"{i}.jpg", b"%d" % i)))
    assert adapter.stats.sent == 50
    sizes = {name: len(value) for name, value in vars(adapter).items() if isinstance(value, list | dict)}
    assert sizes and max(sizes.values()) <= 10, sizes


def test_adapter_holds_the_in_flight_claim_until_delivered_or_given_up() -> None:
    from triggers.inflight import InFlight

    ref = ObjectRef("images", "c.jpg", MD5_HELLO, 5, "image/jpeg")
    event = _event("create", "/buckets/images/c.jpg", _file("c.jpg", b"hello", etag=MD5_HELLO))
    ledger = InFlight()
    seen_in_flight: list[bool] = []

    def on_delivered(refs: list[ObjectRef]) -> None:  # the watcher's snapshot records it while still claimed
        seen_in_flight.append(not ledger.claim(refs[0]))

    adapter = FilerAdapter(Recorder(fail=True), retry_backoff_s=0.01, retry_for_s=0.05, in_flight=ledger,
                           on_delivered=on_delivered)
    with adapter:
        assert adapter.handle(event)[0] == 202
        assert not ledger.claim(ref), "queued for retry: still the adapter's"
        deadline = time.monotonic() + 10
        while adapter.pending_retries() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ledger.claim(ref), "given up: released for the watcher"
    adapter.invoker = Recorder()
    assert adapter.handle(event) == (200, "duplicate"), "the watcher is sending it now"
    ledger.release([ref])
    assert adapter.handle(event) == (200, "duplicate"), "the watcher owns it (its next poll retries a failure)"
    other = _event("create", "/buckets/images/d.jpg", _file("d.jpg", b"hello", etag=MD5_HELLO))
    assert adapter.handle(other) == (200, "sent") and seen_in_flight == [True] and len(ledger) == 0
