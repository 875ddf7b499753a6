"""A store written by the oldest schema opens with every read path (upgraded on first
open); a store stamped by a newer auditor is refused with one sentence and exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from auditor.store import MIGRATIONS, Store, StoreError, schema
from auditor.store.read import dashboard_queries as frames

OLDEST = Path(__file__).resolve().parents[1] / "data" / "store-oldest.duckdb"
APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    copy = tmp_path / "old.duckdb"
    shutil.copy(OLDEST, copy)
    return copy


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args], capture_output=True,
                          text=True, timeout=300)


def names(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY version")
                .fetchall()]


def test_the_committed_store_is_the_oldest_schema() -> None:
    assert names(OLDEST) == ["m001_initial"]


def test_cli_read_paths_upgrade_the_oldest_store(old: Path) -> None:
    listed = cli("runs", "--store", str(old), "--json")
    assert listed.returncode == 0, listed.stderr
    assert names(old) == list(MIGRATIONS)
    newer, older = [r["run_id"] for r in Store(old).runs()]
    for args in (("report", older, "--format", "json"), ("report", newer, "--format", "md"),
                 ("compare", older, newer, "--json")):
        done = cli(*args, "--store", str(old))
        assert done.returncode == 0, (args, done.stderr)


def test_migrate_command_upgrades_once(old: Path) -> None:
    first = cli("migrate", "--store", str(old))
    assert first.returncode == 0 and "m002_evidence" in first.stdout, first.stderr
    again = cli("migrate", "--store", str(old))
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.parametrize("page", ["overview", "why", "queries", "trace", "corpus", "scatter",
                                  "compare", "judge"])
def test_every_dashboard_page_opens_the_oldest_store(old: Path, monkeypatch, page: str) -> None:
    monkeypatch.setenv("AUDITOR_STORE", str(old))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert names(old) == list(MIGRATIONS)


def test_a_reader_that_cannot_upgrade_says_so(old: Path, monkeypatch) -> None:
    """Another process holds the old file: one sentence, not a DuckDB catalog error."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('held', flush=True); time.sleep(60)", str(old)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="older auditor and cannot be upgraded now"):
            Store(old, busy_timeout_s=0.3).runs()
    finally:
        holder.kill()
        holder.wait()


def test_a_store_from_a_newer_auditor_is_refused(old: Path) -> None:
    Store(old).ensure_current()
    with duckdb.connect(str(old)) as con:
        con.execute("INSERT INTO schema_migrations VALUES (99, 'm099_from_the_future', now())")
    for args in (("runs",), ("migrate",)):
        done = cli(*args, "--store", str(old))
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "newer auditor" in lines[0] and "upgrade auditor" in lines[0]
        assert "Catalog" not in done.stderr


def _values(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_old_column_names_are_renamed_with_their_values_kept(old: Path, tmp_path: Path) -> None:
    """m008: the replay's latency is ``replay_latency_ms`` and a judgment's integer is
    ``grade``; the values are the ones the oldest auditor stored, and every reader of
    them works on the upgraded file."""
    latencies = _values(old, "SELECT run_id, query_id, latency_ms FROM query_results "
                             "ORDER BY ALL")
    grades = _values(old, "SELECT run_id, query_id, doc_id, relevance FROM judgments "
                          "ORDER BY ALL")
    assert latencies and grades and any(v is not None for *_, v in latencies)
    newer, older = [r["run_id"] for r in Store(old).runs()]  # a reader upgrades the file
    assert _values(old, "SELECT run_id, query_id, replay_latency_ms FROM query_results "
                        "ORDER BY ALL") == latencies
    assert _values(old, "SELECT run_id, query_id, doc_id, grade FROM judgments "
                        "ORDER BY ALL") == grades
    columns = {c for (c,) in _values(old, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name IN ('query_results', 'judgments')")}
    assert {"replay_latency_ms", "grade"} <= columns
    assert not {"latency_ms", "relevance"} & columns
    query_id = grades[0][1]  # a judged query
    shown = cli("trace", query_id, "--run", older, "--json", "--store", str(old))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"]["replay_latency_ms"] == next(
        v for r, q, v in latencies if (r, q) == (older, query_id))
    exported = cli("export", older, "--run-file", str(tmp_path / "run.trec"), "--qrels-file",
                   str(tmp_path / "qrels.trec"), "--store", str(old))
    assert exported.returncode == 0, exported.stderr
    qrels = [line.split() for line in (tmp_path / "qrels.trec").read_text().splitlines()]
    assert sorted((q, d, int(g)) for q, _, d, g in qrels) == sorted(
        (q, d, g) for r, q, d, g in grades if r == older)
    assert frames.targets(old, newer, query_id, "doc")["grade"].notna().any()


def test_old_evidence_key_of_slow_and_empty_diagnoses_is_rewritten(old: Path,
                                                                    monkeypatch) -> None:
    """Diagnoses stored before m008 name the replay's latency ``latency_ms`` in their
    evidence: the upgrade renames that key (slow and empty_result only; other causes keep
    theirs) and ``auditor trace`` explains the slow query from it."""
    before = {name: MIGRATIONS[name] for name in list(MIGRATIONS)[:list(MIGRATIONS).index(
        "m008_vocabulary")]}
    monkeypatch.setattr(schema, "MIGRATIONS", before)
    Store(old).ensure_current()  # the file as the auditor before m008 left it
    monkeypatch.undo()
    run_id, query_id = _values(old, "SELECT run_id, query_id FROM query_results LIMIT 1")[0]
    stored = {"slow": {"over": ["replay"], "latency_ms": 1500.0, "served_latency_ms": None,
                       "slow_ms": 1000.0},
              "empty_result": {"mode": "bm25", "latency_ms": 7.0, "served": None},
              "drifted": {"overlap": 0.1, "latency_ms": 3.0}}
    with duckdb.connect(str(old)) as con:
        for cause, evidence in stored.items():
            con.execute("INSERT INTO diagnoses VALUES (?, ?, ?, NULL, ?)",
                        [run_id, query_id, cause, json.dumps(evidence)])
    shown = cli("trace", query_id, "--run", run_id, "--store", str(old))
    assert shown.returncode == 0, shown.stderr
    assert "took 1,500 ms, over the 1,000 ms limit" in " ".join(shown.stdout.split())
    evidence = {cause: json.loads(e) for cause, e in _values(
        old, "SELECT cause, evidence FROM diagnoses WHERE query_id = "
             f"'{query_id}' AND run_id = '{run_id}'")}
    assert evidence["slow"] == {"over": ["replay"], "replay_latency_ms": 1500.0,
                                "served_latency_ms": None, "slow_ms": 1000.0}
    assert list(evidence["slow"])[1] == "replay_latency_ms"  # in its place among the keys
    assert evidence["empty_result"] == {"mode": "bm25", "replay_latency_ms": 7.0,
                                        "served": None}
    assert evidence["drifted"] == stored["drifted"]
    assert names(old) == list(MIGRATIONS)


def test_an_upgraded_store_holds_judgment_lists_and_rescores_old_runs(old: Path,
                                                                      tmp_path: Path) -> None:
    """m009: an old run, measured again against a list made from its own judgments, keeps
    every ranking metric it stored."""
    newer, older = [r["run_id"] for r in Store(old).runs()]
    qrels = tmp_path / "own.trec"
    exported = cli("export", older, "--run-file", str(tmp_path / "run.trec"), "--qrels-file",
                   str(qrels), "--store", str(old))
    assert exported.returncode == 0, exported.stderr
    assert cli("judgments", "import", str(qrels), "--store", str(old)).returncode == 0
    done = cli("rescore", older, "--judgments", "own@1", "--json", "--store", str(old))
    assert done.returncode == 0, done.stderr
    changes = {m["metric"]: m for m in json.loads(done.stdout)["metrics"]}
    assert changes["recall@10"]["stored_n"] > 0
    assert all(m["delta"] in (0, None) for m in changes.values()), changes
