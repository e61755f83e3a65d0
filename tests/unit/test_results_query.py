"""The results function's queries (results_core.query) and pages (results_core.pages), without storage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fnvision_common import result_index as ri
from results_core.errors import BadQueryError
from results_core.listing import Item, Page
from results_core.pages import gallery
from results_core.query import make_token, parse_query, plan

WHEN = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def q(**params: str):
    return parse_query({k: [v] for k, v in params.items()}, 50)


@pytest.mark.parametrize(
    ("params", "listing"),
    [
        ({}, "~index/all/"),
        ({"label": "Tabby Cat", "status": "classified"}, "~index/label/tabby cat/"),
        ({"status": "failed", "bucket": "images"}, "~index/failed/"),
        ({"model": "m", "model_version": "1", "bucket": "images"}, "~index/model/m@1/"),
        ({"model": "m", "bucket": "images"}, "~index/source/images/~/"),
        ({"bucket": "images", "prefix": "a/b/c/d/e"}, "~index/source/images/a/b/c/~/"),
        ({"bucket": "images", "prefix": "a/b"}, "~index/source/images/a/~/"),
    ],
)
def test_each_query_is_one_listing_of_its_most_selective_family(params: dict, listing: str) -> None:
    assert plan(q(**params), "").listing == listing


def test_until_starts_after_the_rev_below_and_a_token_after_its_key() -> None:
    query = q(until="2026-11-21T12:00:00Z")
    start = plan(query, "p/").start_after
    assert start == f"p/~index/all/{int(ri.rev(WHEN)) - 1:013d}~"
    later = f"p/~index/all/{ri.rev(WHEN)}/images/x/e/m@1.json"
    token = make_token(later, query)
    assert plan(q(until="2026-11-21T12:00:00Z", page_token=token), "p/").start_after == later


@pytest.mark.parametrize(
    "params",
    [{"limit": "201"}, {"limit": "x"}, {"label_in": "top3"}, {"status": "ok"}, {"prefix": "a"},
     {"model_version": "1"}, {"since": "2026-11-22T00:00:00Z", "until": "2026-11-21T00:00:00Z"}, {"until": "soon"}],
)
def test_unusable_parameters_are_bad_queries(params: dict) -> None:
    with pytest.raises(BadQueryError):
        q(**params)


def test_a_token_is_bound_to_its_filters() -> None:
    token = make_token("~index/all/0000000000001/x", q())
    with pytest.raises(BadQueryError, match="another query"):
        plan(q(status="classified", page_token=token), "")
    with pytest.raises(BadQueryError):
        plan(q(page_token="!!"), "")
    assert plan(q(limit="5", page_token=token), "").start_after == "~index/all/0000000000001/x"  # limit may change


def test_the_gallery_escapes_what_documents_say() -> None:
    doc = {"schema": ri.RESULT_SCHEMA, "source": {"bucket": "images", "key": "<script>alert(1)</script>.jpg"},
           "predictions": [{"index": 1, "label": "<b>cat</b>", "score": 0.5}], "model": {"name": "m", "version": "1"},
           "exif": {"make": "Canon", "model": "<i>EOS</i>", "datetime_original": "2026:01:01 10:00:00"},
           "recorded_at": "2026-11-21T12:00:00Z"}
    page = gallery(Page([Item("k", doc)], None, 1), q(), lambda b, k: f"http://s3/{b}/{k}?a=1&b=2")
    assert "<script>alert" not in page and "<b>cat</b>" not in page and "&lt;b&gt;cat&lt;/b&gt;" in page
    assert "camera Canon &lt;i&gt;EOS&lt;/i&gt;" in page and "taken 2026:01:01 10:00:00" in page
    assert 'src="http://s3/images/&lt;script&gt;alert(1)&lt;/script&gt;.jpg?a=1&amp;b=2"' in page


def test_a_card_without_labels_shows_the_outputs() -> None:
    doc = {"schema": ri.RESULT_SCHEMA, "source": {"bucket": "images", "key": "a.jpg"}, "outputs": {"age": [31.5]},
           "model": {"name": "age", "version": "1"}, "recorded_at": "2026-11-21T12:00:00Z"}
    page = gallery(Page([Item("k", doc)], None, 1), q(), lambda b, k: "http://s3/x")
    assert "{&#34;age&#34;: [31.5]}" in page and "(no labels)" not in page
