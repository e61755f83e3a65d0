"""The gallery in a real headless Chromium (Debian's `chromium`, driven by Playwright over CDP)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, ResultsApp

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags this machine needs (env machines notes): no sandbox as root, and no background networking,
# whose connections the closed network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / ".local" / "test-artifacts" / "gallery.png"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    response = page.goto(url, wait_until="load")
    return page, response, problems


def test_the_gallery_shows_a_card_per_record_with_loaded_thumbnails(results_app: ResultsApp, browser) -> None:
    page, response, problems = _open(browser, results_app.url("results/gallery") + "?limit=50")
    assert response is not None and response.status == 200
    cards = page.locator("article.card")
    expected = len(results_app.uploads()) + len(results_app.v2)
    assert cards.count() == expected
    labels = page.eval_on_selector_all("article.card.classified .top", "els => els.map(e => e.dataset.label)")
    assert len(labels) == expected - 1 and all(labels)
    chelsea = page.locator('article.card[data-key="gallery/a/chelsea.jpg"] .top').first.inner_text()
    assert chelsea == "tiger cat"
    failed = page.locator("article.card.failed")
    assert failed.count() == 1 and "not_an_image" in failed.inner_text()
    assert failed.locator("img").count() == 0
    widths = page.eval_on_selector_all("article.card img.thumb", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(widths) == expected - 1 and all(w and w > 0 for w in widths), widths
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert problems == []


def test_the_label_filter_and_paging_in_the_browser(results_app: ResultsApp, browser) -> None:
    page, _, problems = _open(browser, results_app.url("results/gallery") + "?limit=4")
    assert page.locator("article.card").count() == 4
    page.click("a[rel=next]")
    page.wait_for_load_state("load")
    assert page.locator("article.card").count() == 4 and "page_token=" in page.url
    page.fill("input[name=label]", "Tiger Cat")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    tops = page.eval_on_selector_all("article.card .top", "els => els.map(e => e.dataset.label)")
    assert tops and set(tops) == {"tiger cat"} and "page_token" not in page.url
    assert problems == []


def test_the_docs_page_lists_every_trigger(results_app: ResultsApp, browser) -> None:
    page, response, problems = _open(browser, results_app.url("results/docs"))
    assert response is not None and response.status == 200
    text = page.inner_text("main")
    for path in ("/classify", "/preprocess", "/predict", "/predict/v2/models/efficientnet-lite0/infer",
                 "/results", "/results/one", "/results/gallery", "/results/openapi.json", "/results/docs"):
        assert path in text
    assert problems == []


def test_the_snapshot_opens_without_a_server(results_app: ResultsApp, browser, tmp_path: Path) -> None:
    from devstack.snapshot import write_snapshot

    out = write_snapshot(results_app.url("results/gallery"), {"bucket": "images", "prefix": "gallery/b/", "limit": 50},
                         tmp_path / "index.html")
    text = out.read_text()
    assert "X-Amz-Signature" not in text and text.count('src="data:image/jpeg;base64,') == len(results_app.run_b)
    page, _, problems = _open(browser, out.as_uri())
    widths = page.eval_on_selector_all("img.thumb", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(widths) == len(results_app.run_b) and all(w and w > 0 for w in widths)
    assert problems == []
