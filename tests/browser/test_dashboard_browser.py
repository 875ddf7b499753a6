"""The dashboard seen in a real browser: ``streamlit run`` on 127.0.0.1 against a copy of the
fixture store, every page opened in headless Chromium (Debian's, driven by playwright; no
browser download), no exception box, a screenshot per page in ``tests/artifacts/``, the
Overview → failing query → answer trace path done by clicks, and hostile logged text shown
as text.

Skipped only when /usr/bin/chromium is missing outside CI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from .harness import needs_chromium, no_exception, settle, shoot

HOSTILE_QUERY = "![pixel](http://evil.example/p.png) <img src=x onerror=alert(1)> [click](javascript:alert(1)) :red[x] $x$"  # noqa: E501
PAGES = {  # url path → the heading it shows
    "overview": "Overview",
    "why": "Why retrieval fails",
    "queries": "Query explorer",
    "trace": "Answer trace",
    "corpus": "Corpus coverage",
    "scatter": "Scatter",
    "gaps": "Knowledge gaps",
    "compare": "Compare runs",
    "judge": "Judge",
}

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def hostile_store(nightly_store, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the fixture store where one passing query's text is hostile markup."""
    path = tmp_path_factory.mktemp("browser") / "audit.duckdb"
    shutil.copy(nightly_store.path, path)
    with duckdb.connect(str(path)) as con:
        query_id = con.execute(
            "SELECT query_id FROM metrics WHERE run_id = ? AND metric = 'recall@10' AND "
            "value = 1 ORDER BY query_id DESC LIMIT 1", [nightly_store.run_id]).fetchone()[0]
        con.execute("UPDATE query_results SET query = ? WHERE query_id = ?",
                    [HOSTILE_QUERY, query_id])
    return path, query_id


@pytest.fixture(scope="module")
def dashboard(hostile_store) -> Iterator[str]:
    """``dashboards.command`` (streamlit run dashboards/app.py ... -- --store PATH) on a free
    loopback port."""
    from dashboards import serving

    with serving(hostile_store[0]) as url:
        yield url


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders(dashboard, page, nightly_store, path):
    query = "&query=133" if path in ("trace", "queries") else ""
    where = "" if path == "overview" else path  # the default page lives at the root
    page.goto(f"{dashboard}/{where}?run={nightly_store.run_id}{query}")
    settle(page, PAGES[path])
    no_exception(page)
    assert page.get_by_text("Page not found").count() == 0
    assert shoot(page, path).stat().st_size > 10_000


def test_overview_to_failing_trace_in_three_clicks(dashboard, page, nightly_store):
    page.goto(dashboard)
    settle(page, "Overview")
    assert page.get_by_text("Gates failed").count() == 1
    # click 1: the first failing query's Trace link
    page.locator('[data-testid="stPageLink-NavLink"]', has_text="Trace").first.click()
    settle(page, "Answer trace")
    assert "query=" in page.url and "/trace" in page.url
    no_exception(page)
    # click 2: a sentence, to see its supporting chunks
    pills = page.locator('[data-testid="stButtonGroup"] button')
    assert pills.count() >= 1
    pills.last.click()
    page.wait_for_timeout(1500)
    settle(page, "Answer trace")
    no_exception(page)
    assert page.get_by_text("best support anywhere").count() + page.get_by_text(
        "Supported").count() >= 1
    shoot(page, "overview-to-trace")


def test_sidebar_navigation_and_segment_filter(dashboard, page):
    page.goto(dashboard)
    settle(page, "Overview")
    page.get_by_role("link", name="Why retrieval fails").click()
    settle(page, "Why retrieval fails")
    assert page.get_by_text("50 queries in the run").count() == 1
    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    page.get_by_text("queries in this segment").wait_for(timeout=30_000)
    settle(page, "Why retrieval fails")
    no_exception(page)


def test_hostile_logged_text_is_shown_as_text(dashboard, page, nightly_store, hostile_store):
    _, query_id = hostile_store
    for path, heading in (("queries", "Query explorer"), ("trace", "Answer trace")):
        page.goto(f"{dashboard}/{path}?run={nightly_store.run_id}&query={query_id}")
        settle(page, heading)
        no_exception(page)
        assert page.locator('img[src*="evil.example"]').count() == 0
        assert page.locator('a[href*="evil.example"]').count() == 0
        assert page.locator('a[href^="javascript"]').count() == 0
        assert page.locator("img[onerror]").count() == 0
        assert page.get_by_text("<img src=x onerror=alert(1)>", exact=False).count() >= 1
    shoot(page, "hostile-text")


def test_not_evaluated_run_says_so_without_deltas(dashboard, page, nightly_store):
    """The first night had no baseline: the Overview says "not evaluated" and why, shows no
    change on any card, and its explorer labels both latencies for what they measure."""
    page.goto(f"{dashboard}/?run={nightly_store.baseline_run_id}")
    settle(page, "Overview")
    no_exception(page)
    banner = page.locator('[data-testid="stAlertContentWarning"]').first
    assert "Gates not evaluated" in banner.inner_text()
    assert page.locator('[data-testid="stAlertContentSuccess"]').count() == 0
    assert page.locator('[data-testid="stMetricDelta"]').count() == 0
    assert page.get_by_text("No comparable baseline, so no change is shown").count() == 1
    shoot(page, "overview-not-evaluated")
    page.set_viewport_size({"width": 2400, "height": 1000})  # the grid draws visible columns
    page.goto(f"{dashboard}/queries?run={nightly_store.baseline_run_id}")
    settle(page, "Query explorer")
    headers = page.locator('[data-testid="stDataFrame"] table th').all_inner_texts()
    assert "replay ms" in headers and "production ms" in headers
