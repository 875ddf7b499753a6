"""`auditor gaps`, and the knowledge gaps section of the reports, on the SciFact fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_audit import auditor, write_config


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A hybrid run with answers traced (hash encoder: every query has a vector)."""
    directory = tmp_path_factory.mktemp("gaps")
    write_config(directory, mode="hybrid", trace=True)
    assert auditor("index", "build", cwd=directory).returncode == 0
    done = auditor("run", "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    return directory, json.loads(done.stdout)["run_id"]


def test_gaps_cover_every_answered_query_once(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    done = auditor("gaps", run_id, "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    clusters = data["clusters"]
    assert len(clusters) == 5  # cluster_count(50)
    assert sum(c["queries"] for c in clusters) == 50 and data["not_evaluated"] is None
    assert abs(sum(c["query_share"] for c in clusters) - 1) < 1e-9
    assert abs(sum(c["corpus_density"] for c in clusters) - 1) < 1e-9 and data["chunks"] > 0
    scores = [c["gap_score"] for c in clusters]
    assert scores == sorted(scores, reverse=True)
    assert all("drifted" not in dict(c["top_causes"]) for c in clusters)

    worst = clusters[0]
    listed = json.loads(auditor("gaps", run_id, "--cluster", str(worst["cluster"]), "--json",
                                cwd=directory).stdout)
    assert len(listed) == worst["queries"]
    assert sum(bool(q["causes"] and set(q["causes"].split(", ")) - {"drifted"})
               for q in listed) == worst["failing"]


def test_gaps_table_and_errors(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    done = auditor("gaps", run_id, cwd=directory)
    assert done.returncode == 0 and "Knowledge gaps (5 topics" in done.stdout
    missing = auditor("gaps", run_id, "--cluster", "99", cwd=directory)
    assert missing.returncode == 2 and "has no cluster 99" in missing.stderr
    unknown = auditor("gaps", "no-such-run", cwd=directory)
    assert unknown.returncode == 2


def test_recompute_gives_the_stored_clusters(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    before = json.loads(auditor("gaps", run_id, "--json", cwd=directory).stdout)
    again = auditor("gaps", run_id, "--recompute", "--json", cwd=directory)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == before


def test_reports_show_the_gaps(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    markdown = auditor("report", run_id, "--format", "md", cwd=directory).stdout
    assert "**Knowledge gaps** (5 topics" in markdown and "| corpus density |" in markdown
    html = auditor("report", run_id, "--format", "html", cwd=directory).stdout
    assert 'id="chart-gaps"' in html and 'id="gaps-table"' in html
    data = json.loads(auditor("report", run_id, "--format", "json", cwd=directory).stdout)
    assert data["gaps"]["topics"] == 5 and len(data["gaps"]["clusters"]) == 5


def test_a_run_without_vectors_says_not_evaluated(tmp_path: Path) -> None:
    write_config(tmp_path, mode="bm25", trace=False, ablations=False)
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    run_id = json.loads(auditor("run", "--json", cwd=tmp_path).stdout)["run_id"]
    done = auditor("gaps", run_id, cwd=tmp_path)
    assert done.returncode == 0 and "not evaluated (the run has no encoder" in done.stdout
    markdown = auditor("report", run_id, "--format", "md", cwd=tmp_path).stdout
    assert "**Knowledge gaps**: not evaluated" in markdown


def test_a_large_run_is_clustered_on_a_seeded_sample(audited: tuple[Path, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Above QUERY_SAMPLE queries the topics come from a sample the seed fixes, and say so."""
    from auditor import gaps as gap_view
    from auditor.backends.embedded import EmbeddedBackend
    from auditor.embed import CachedEncoder
    from auditor.store import Store

    directory, run_id = audited
    store = Store(directory / "audit.duckdb")
    total, rows = store.query_facts(run_id, 20, seed=3)
    again = store.query_facts(run_id, 20, seed=3)[1]
    assert total == 50 and len(rows) == 20 and rows == again
    assert [r[0] for r in store.query_facts(run_id, 20, seed=4)[1]] != [r[0] for r in rows]
    monkeypatch.setattr(gap_view, "QUERY_SAMPLE", 20)
    encoder = CachedEncoder.named("hash", store)
    found = gap_view.measure_gaps(store, run_id, encoder,
                                  EmbeddedBackend.open(directory / "index", encoder), seed=3)
    assert set(found.members) == {r[0] for r in rows}
    assert found.not_evaluated == ("topics found on a seeded sample of 20 of the run's 50 "
                                   "queries")
    assert store.gap_run(run_id)["not_evaluated"] == found.not_evaluated
