"""The results API against real SeaweedFS with real results from the pipeline (tests/e2e/conftest.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fnvision_common import result_index as ri

from devstack.ports import free_port
from fnlocal import FnLocal
from tests.e2e.conftest import REPO, ResultsApp

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _list(app: ResultsApp, **params: object) -> dict:
    reply = httpx.get(app.url("results"), params=params, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _all(app: ResultsApp, **params: object) -> list[dict]:
    """Every page of a query, following the tokens."""
    items, token = [], None
    for _ in range(20):
        page = _list(app, **params, **({"page_token": token} if token else {}))
        items += page["items"]
        token = page["next_page_token"]
        if token is None:
            return items
    raise AssertionError("more than 20 pages")


def _keys(items: list[dict]) -> list[str]:
    return [item["source"]["key"] for item in items]


def test_the_list_holds_every_record_newest_first(results_app: ResultsApp) -> None:
    items = _all(results_app)
    assert len(items) == len(results_app.uploads()) + len(results_app.v2)
    times = [ri.parse_time(item["recorded_at"]) for item in items]
    assert times == sorted(times, reverse=True)
    assert {item["document"]["schema"] for item in items} == {ri.RESULT_SCHEMA, ri.FAILURE_SCHEMA}
    first = items[0]
    assert first["bucket"] == "results" and first["key"].endswith(".json")
    assert first["document"]["source"]["key"] == first["source"]["key"]


def test_paging_across_pages_gives_each_record_once(results_app: ResultsApp) -> None:
    everything = _all(results_app)
    pages, token = [], None
    while True:
        page = _list(results_app, limit=5, **({"page_token": token} if token else {}))
        pages.append(page["items"])
        token = page["next_page_token"]
        if token is None:
            break
    assert [len(p) for p in pages][:2] == [5, 5] and len(pages) == 3
    assert [i["key"] for p in pages for i in p] == [i["key"] for i in everything]


def test_label_top1_and_in_topk(results_app: ResultsApp) -> None:
    top1 = _all(results_app, label="Tiger Cat")
    assert top1 and all(i["document"]["predictions"][0]["label"] == "tiger cat" for i in top1)
    assert "gallery/a/chelsea.jpg" in _keys(top1)
    chelsea = next(i for i in top1 if i["source"]["key"] == "gallery/a/chelsea.jpg")
    second = chelsea["document"]["predictions"][1]["label"]
    in_topk = _all(results_app, label=second, label_in="topk")
    assert "gallery/a/chelsea.jpg" in _keys(in_topk)
    assert all(second in [p["label"] for p in i["document"]["predictions"][:5]] for i in in_topk)
    assert "gallery/a/chelsea.jpg" not in _keys(_all(results_app, label=second))
    assert _all(results_app, label="no such label") == []


def test_failure_records_are_listed_with_their_reason(results_app: ResultsApp) -> None:
    (failed,) = _all(results_app, status="failed")
    assert failed["status"] == "failed" and failed["source"]["key"] == results_app.failure.key
    assert failed["document"]["error"]["code"] == "not_an_image" and failed["document"]["stage"] == "decode"
    classified = _all(results_app, status="classified")
    assert len(classified) == len(results_app.uploads()) - 1 + len(results_app.v2)
    assert all(i["status"] == "classified" for i in classified)
    assert _all(results_app, status="failed", label="tiger cat") == []


def test_model_and_model_version_filters(results_app: ResultsApp) -> None:
    name, version = results_app.model
    v2 = _all(results_app, model=name, model_version="2.0.0")
    assert sorted(_keys(v2)) == sorted(results_app.v2)
    assert all(i["document"]["model"]["version"] == "2.0.0" for i in v2)
    v1 = _all(results_app, model=name, model_version=version)
    assert len(v1) == len(results_app.uploads()) - 1
    assert len(_all(results_app, model=name)) == len(v1) + len(v2)
    assert _all(results_app, model="other-model") == []


def test_source_bucket_and_prefix_filters(results_app: ResultsApp) -> None:
    b = _all(results_app, bucket="images", prefix="gallery/b/")
    assert sorted(_keys(b)) == sorted(u.key for u in results_app.run_b)
    c = _all(results_app, bucket="images", prefix="gallery/a/c")
    assert sorted(set(_keys(c))) == ["gallery/a/camera.jpg", "gallery/a/chelsea.jpg", "gallery/a/coffee.jpg"]
    assert len(_all(results_app, bucket="images")) == len(_all(results_app))
    assert _all(results_app, bucket="elsewhere") == []


def test_recorded_time_range(results_app: ResultsApp) -> None:
    items = _all(results_app)
    run_b = {u.key for u in results_app.run_b}
    b_times = [ri.parse_time(i["recorded_at"]) for i in items if i["source"]["key"] in run_b]
    since, until = min(b_times), max(b_times)
    window = _all(results_app, since=ri.format_time(since), until=ri.format_time(until))
    assert run_b <= set(_keys(window))
    assert all(since <= ri.parse_time(i["recorded_at"]) <= until for i in window)
    later = _all(results_app, since=ri.format_time(max(b_times) + timedelta(milliseconds=1)), status="classified",
                 bucket="images", prefix="gallery/b/")
    assert later == []


def test_one_gives_the_newest_record_of_the_current_version(results_app: ResultsApp) -> None:
    one = results_app.url("results/one")
    latest = httpx.get(one, params={"bucket": "images", "key": "gallery/a/chelsea.jpg"}).json()
    assert latest["document"]["model"]["version"] == "2.0.0"
    etag = latest["source"]["etag"]
    v1 = httpx.get(one, params={"bucket": "images", "key": "gallery/a/chelsea.jpg", "etag": etag,
                                "model": results_app.model[0], "model_version": results_app.model[1]}).json()
    assert v1["document"]["model"]["version"] == results_app.model[1]
    failure = httpx.get(one, params={"bucket": "images", "key": results_app.failure.key}).json()
    assert failure["status"] == "failed"
    missing = httpx.get(one, params={"bucket": "images", "key": "gallery/none.jpg"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"status": "done"}, {"prefix": "a/"}, {"since": "yesterday"},
                                    {"model_version": "1"}, {"page_token": "nonsense"}])
def test_bad_queries_are_400(results_app: ResultsApp, params: dict) -> None:
    reply = httpx.get(results_app.url("results"), params=params)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_query"


def test_a_page_token_works_only_with_its_own_query(results_app: ResultsApp) -> None:
    token = _list(results_app, limit=2)["next_page_token"]
    reply = httpx.get(results_app.url("results"), params={"limit": 2, "label": "tiger cat", "page_token": token})
    assert reply.status_code == 400 and "another query" in reply.json()["error"]["message"]


def test_a_duplicate_event_adds_no_index_entry(results_app: ResultsApp) -> None:
    client = results_app.stack.seaweed.client()

    def index_keys() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket="results", Prefix="~index/")
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    before = index_keys()
    fn = results_app.stack.fnlocal
    for _ in range(2):  # once through the done check, and the failure record's object too
        reply = httpx.post(fn.invoke_url("vision", "preprocess"), timeout=60,
                           json=[{"bucket": "images", "key": u.key} for u in results_app.run_b[:2]]
                           + [{"bucket": "images", "key": results_app.failure.key}])
        assert reply.status_code == 200, reply.text
    assert index_keys() == before


def test_the_token_is_required_when_configured(results_app: ResultsApp, tmp_path: Path) -> None:
    stack = results_app.stack
    config = {**stack.function_config(stack.seaweed.env()), "AUTH_TOKEN": "s3cret"}
    with FnLocal(str(REPO), port=free_port(), env_overrides=config, log=tmp_path / "fn.log") as fn:
        base = fn.trigger_url("vision", "/results")
        denied = httpx.get(base)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert httpx.get(base, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        gallery = fn.trigger_url("vision", "/results/gallery")
        page = httpx.get(gallery)
        assert page.status_code == 401 and "token" in page.text and page.headers["content-type"].startswith("text/html")
        opened = httpx.get(gallery, params={"token": "s3cret", "label": "tiger cat"})
        assert opened.status_code == 303 and opened.headers["location"] == "gallery?label=tiger+cat"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Path=/t/vision/results" in cookie
        with httpx.Client(base_url=fn.url) as browser:
            browser.cookies.set("fnvision_token", "s3cret")
            assert browser.get("/t/vision/results/gallery").status_code == 200
        assert httpx.get(gallery, params={"token": "wrong"}).status_code == 401
        assert httpx.get(fn.trigger_url("vision", "/results/openapi.json")).status_code == 200  # public
        one = httpx.get(fn.trigger_url("vision", "/results/one"), params={"bucket": "images", "key": "x"})
        assert one.status_code == 401


def test_other_methods_are_refused(results_app: ResultsApp) -> None:
    reply = httpx.post(results_app.url("results"), json={})
    assert reply.status_code == 405 and reply.json()["error"]["code"] == "method_not_allowed"
