"""Storage at scale: ``store_depth`` stores the top of each ranked list, and ``auditor prune
--keep-hits-days`` drops old runs' hits while every page of a pruned run still opens and says
"hits pruned" where its hits were (issue 13)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from auditor.audit import run_audit
from auditor.compare import compare_runs
from auditor.config import load_settings
from auditor.errors import ConfigError
from auditor.store import Store
from dashboards.detail import PRUNED

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
KEPT = ("runs", "query_results", "metrics", "sentences", "support", "diagnoses", "verdicts",
        "judgments", "corpus_coverage")


def auditor(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")}
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args, "--store", str(store)],
                          cwd=store.parent, env=environ, text=True, capture_output=True,
                          timeout=600)


def counts(path: Path, run_id: str) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {table: con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?",
                                   [run_id]).fetchone()[0] for table in (*KEPT, "hits")}


@pytest.fixture(scope="module")
def pruned(nightly_store, tmp_path_factory) -> tuple[Path, dict[str, dict[str, int]], str]:
    """A copy of the two-night store with the first night's hits pruned (its start moved 40
    days back); the counts before, and what prune printed."""
    copy = tmp_path_factory.mktemp("pruned") / "audit.duckdb"
    shutil.copy(nightly_store.path, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE runs SET started_at = ? WHERE run_id = ?",
                    [datetime.now(UTC) - timedelta(days=40), nightly_store.baseline_run_id])
    before = {run: counts(copy, run) for run in (nightly_store.baseline_run_id,
                                                nightly_store.run_id)}
    done = auditor("prune", "--keep-hits-days", "30", store=copy)
    assert done.returncode == 0, done.stderr
    return copy, before, done.stdout


def test_prune_drops_old_hits_and_keeps_everything_else(pruned, nightly_store):
    copy, before, stdout = pruned
    old, new = nightly_store.baseline_run_id, nightly_store.run_id
    after = counts(copy, old)
    assert before[old]["hits"] > 0 and after["hits"] == 0
    assert {t: after[t] for t in KEPT} == {t: before[old][t] for t in KEPT}
    assert counts(copy, new) == before[new]  # 40 days old is pruned, today's run is not
    assert f"{old} (started " in stdout and f"dropped {before[old]['hits']:,} hits" in stdout
    assert new not in stdout
    again = auditor("prune", "--keep-hits-days", "30", store=copy)
    assert again.returncode == 0 and "nothing to prune" in again.stdout
    assert Store(copy).hits_pruned(old) and not Store(copy).hits_pruned(new)


def test_pruned_run_pages_open_and_say_hits_pruned(pruned, nightly_store, monkeypatch):
    copy, _, _ = pruned
    old = nightly_store.baseline_run_id
    monkeypatch.setenv("AUDITOR_STORE", str(copy))
    query = "133"
    for page in ("overview", "queries", "trace", "why", "corpus", "scatter", "compare"):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.query_params.update({"run": old, "query": query})
        at.run()
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        if page == "queries":
            shown = [w.value for w in at.warning] + [c.value for c in at.caption]
            assert PRUNED in shown
    trace = auditor("trace", query, "--run", old, store=copy)
    assert trace.returncode == 0, trace.stderr
    assert "(hits pruned)" in trace.stdout.splitlines()[0]
    for fmt in ("md", "html", "json"):
        report = auditor("report", old, "--format", fmt, store=copy)
        assert report.returncode == 0, (fmt, report.stderr)


def test_drift_against_a_pruned_run_is_not_evaluated(pruned, nightly_store):
    """No lists to compare is not "every list changed": overlap and RBO are not evaluated,
    while the metrics are still compared."""
    copy, _, _ = pruned
    compared = auditor("compare", nightly_store.baseline_run_id, nightly_store.run_id,
                       store=copy)
    assert compared.returncode == 0, compared.stderr
    assert "result lists: not evaluated" in compared.stdout
    whole = auditor("compare", nightly_store.baseline_run_id, nightly_store.run_id,
                    store=nightly_store.path)
    assert "result lists: overlap@" in whole.stdout
    drift = compare_runs(Store(copy), nightly_store.baseline_run_id, nightly_store.run_id,
                         resamples=200).drift
    assert drift["n"] == 0 and drift["overlap"] is None and "pruned" in drift["not_evaluated"]


def test_prune_without_a_store_is_one_sentence(tmp_path):
    done = auditor("prune", "--keep-hits-days", "7", store=tmp_path / "none.duckdb")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no results store" in done.stderr


def test_store_depth_keeps_the_top_of_each_list(nightly_store, tmp_path):
    settings = nightly_store.settings.model_copy(update={
        "store": tmp_path / "shallow.duckdb", "store_depth": 12, "baseline": "none"})
    run_id, _ = run_audit(settings)
    with duckdb.connect(str(settings.store), read_only=True) as con:
        deepest, = con.execute("SELECT max(rank) FROM hits WHERE run_id = ?", [run_id]).fetchone()
        per_query, = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM hits WHERE "
                                 "run_id = ? GROUP BY seq)", [run_id]).fetchone()
        fetched, = con.execute("SELECT max(n_hits) FROM query_results WHERE run_id = ?",
                               [run_id]).fetchone()
        full = dict(con.execute("SELECT metric, avg(value) FROM metrics WHERE run_id = ? "
                                "GROUP BY metric", [run_id]).fetchall())
    assert deepest == per_query == 12 and fetched == 100  # fetched 100, stored 12
    reference = {m["metric"]: m["mean"] for m in Store(nightly_store.path)
                 .metric_means(nightly_store.baseline_run_id)}
    assert full["recall@100"] == pytest.approx(reference["recall@100"])  # metrics saw all 100


def test_store_depth_below_diagnose_k_is_refused_at_load(tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text("store_depth = 5\ndiagnose_k = 10\n")
    with pytest.raises(ConfigError, match=r"store_depth \(5\) is below diagnose_k \(10\)"):
        load_settings(config)


def test_rescoring_a_pruned_run_is_refused(pruned, nightly_store):
    copy, _, _ = pruned
    imported = auditor("judgments", "import", str(nightly_store.settings.qrels), "--name",
                       "scifact", store=copy)
    assert imported.returncode == 0, imported.stderr
    done = auditor("rescore", nightly_store.baseline_run_id, "--judgments", "scifact@1",
                   store=copy)
    assert done.returncode == 2 and "hits were pruned" in done.stderr


def test_export_parquet_writes_a_hive_partitioned_copy_of_the_run(nightly_store, tmp_path):
    lake = tmp_path / "lake"
    run_id = nightly_store.run_id
    done = auditor("export", run_id, "--parquet", str(lake), store=nightly_store.path)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        day, = con.execute("SELECT CAST(started_at AS DATE) FROM runs WHERE run_id = ?",
                           [run_id]).fetchone()
        stored = con.execute("SELECT query_id, metric, value FROM metrics WHERE run_id = ? "
                             "ORDER BY ALL", [run_id]).fetchall()
    assert {p.name for p in (lake / "metrics").iterdir()} == {f"run_date={day}"}
    read = duckdb.sql(f"SELECT query_id, metric, value, run_date FROM read_parquet("
                      f"'{lake}/metrics/*/*.parquet', hive_partitioning = true) "
                      "ORDER BY ALL").fetchall()
    assert [r[:3] for r in read] == stored and {r[3] for r in read} == {day}
    assert {"runs", "hits", "query_results", "diagnoses"} <= {p.name for p in lake.iterdir()}
    again = auditor("export", run_id, "--parquet", str(lake), store=nightly_store.path)
    assert again.returncode == 0, again.stderr  # a second export replaces the run's files
    assert duckdb.sql(f"SELECT count(*) FROM '{lake}/metrics/*/*.parquet'").fetchall()[0][0] \
        == len(stored)
    other = auditor("export", nightly_store.baseline_run_id, "--parquet", str(lake),
                    store=nightly_store.path)
    assert other.returncode == 0, other.stderr  # the other night's file sits beside it
    assert len(list((lake / "metrics").glob("run_date=*/*.parquet"))) == 2
    assert auditor("export", run_id, store=nightly_store.path).returncode == 2
