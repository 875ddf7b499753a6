"""The Judge page in Chromium, driven by the keyboard only after the rater's name: five pairs
from the pooled queue graded with the 0-3 shortcuts are in the store with rater and time,
in one version of the list (the session's, closed with `f`), and `auditor rescore RUN
--judgments NAME@VERSION` shows the run's judged@10 rise by exactly what those five labels
add."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from auditor.store import Store
from tests.integration.test_audit import auditor

from .harness import needs_chromium, no_exception, settle, shoot

pytestmark = needs_chromium
GRADES = (0, 1, 2, 3, 1)
DOCUMENT = re.compile(r"^Document (\S+) \((?:rank \d+|silver evidence, unranked)\)$")


@pytest.fixture
def store(nightly_store, tmp_path: Path) -> Store:
    """A copy of the fixture store: this test writes to it."""
    path = tmp_path / "audit.duckdb"
    shutil.copy(nightly_store.path, path)
    return Store(path)


@pytest.fixture
def dashboard(store: Store) -> Iterator[str]:
    from dashboards import serving

    with serving(store.path) as url:
        yield url


def shown_pair(page) -> tuple[str, str]:
    """(query text, document id) of the pair the page asks about."""
    heading = page.get_by_role("heading", name=DOCUMENT).first.inner_text().strip()
    query = page.locator('[data-testid="stText"]').first.inner_text().strip()
    return query, DOCUMENT.match(heading).group(1)


def rescored(store: Store, run_id: str, spec: str) -> dict:
    done = auditor("rescore", run_id, "--judgments", spec, "--store", str(store.path),
                   "--json", cwd=store.path.parent)
    assert done.returncode == 0, done.stderr
    return {m["metric"]: m for m in json.loads(done.stdout)["metrics"]}


def judged_gain(store: Store, run_id: str, pairs: set[tuple[str, str]]) -> float:
    """How much the run's mean judged@10 rises when ``pairs`` become judged (none of them
    judged before): per answered query, new judged ids in its top 10 / min(10, hits)."""
    ranking = store.run_ranking(run_id)
    hits: dict[int, list[str]] = {}
    for row in ranking.hits.to_pylist():
        hits.setdefault(row["seq"], []).append(row["id"])
    gains = []
    for row in ranking.queries.to_pylist():
        top = list(dict.fromkeys(hits.get(row["seq"], [])))[:10]
        if top:
            gains.append(sum((row["query_id"], d) in pairs for d in top) / len(top))
    return sum(gains) / len(gains)


def test_five_pairs_judged_with_the_keyboard(dashboard, page, store, nightly_store):
    run_id = nightly_store.run_id
    page.goto(f"{dashboard}/judge?run={run_id}")
    settle(page, "Judge")
    no_exception(page)
    assert page.get_by_role("button", name=re.compile("^1 relevant")).is_disabled()
    rater = page.get_by_role("textbox", name="Rater")
    rater.fill("alice")
    rater.press("Enter")
    settle(page, "Judge")
    page.get_by_role("heading", name="Judge").first.click()  # focus off the text field
    with duckdb.connect(str(store.path), read_only=True) as con:
        queries = dict(con.execute("SELECT query, query_id FROM query_results WHERE "
                                   "run_id = ?", [run_id]).fetchall())
    shown = []
    for number, grade in enumerate(GRADES):
        assert page.get_by_text("holds this document's text").count() == 0  # index read
        pair = shown_pair(page)
        shown.append((queries[pair[0]], pair[1], grade))
        if number == 2:
            shoot(page, "judge-keyboard")
        page.keyboard.press(str(grade))
        page.wait_for_function(
            "([before]) => [...document.querySelectorAll('h3')].every("
            "h => !h.innerText.startsWith(before))", arg=[f"Document {pair[1]} "],
            timeout=30_000)
        settle(page, "Judge")
        no_exception(page)
    assert len({(q, d) for q, d, _ in shown}) == 5  # each grade moved the queue on
    base = store.run(run_id)["manifest"]["judgments"]
    latest = store.list_version("qrels")
    assert latest.version == base["version"] + 1  # the session's one version
    assert page.get_by_text(f"5 judged this session into {latest.spec}").count() == 1
    page.keyboard.press("f")  # finish: the next grade would open a new version
    page.get_by_text("0 judged this session").wait_for(timeout=30_000)
    labels = [row for row in store.list_labels("qrels", latest.version).to_pylist()
              if row["source"] == "human:alice"]
    assert [(r["query_id"], r["doc_id"], r["grade"]) for r in labels] == shown
    assert all(r["labeled_at"] is not None for r in labels)

    before = rescored(store, run_id, f"qrels@{base['version']}")["judged@10"]
    after = rescored(store, run_id, latest.spec)["judged@10"]
    gain = judged_gain(store, run_id, {(q, d) for q, d, _ in shown})
    assert gain > 0
    assert after["rescored"] - before["rescored"] == pytest.approx(gain)
