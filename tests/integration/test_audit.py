"""Whole audits, through the library and through the `auditor` command as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest

from auditor.audit import RunStoppedEarly, run_audit
from auditor.backends import BackendError, SearchResult
from auditor.backends.embedded import EmbeddedBackend
from auditor.config import load_settings
from auditor.store import Store
from tests.conftest import FIXTURES, ROOT

SCIFACT = FIXTURES / "scifact"


def auditor(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("AUDITOR_ES_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "auditor.cli", *args], cwd=cwd, env=env, text=True,
        capture_output=True, timeout=timeout,
    )


def write_config(directory: Path, **extra: object) -> Path:
    values = {
        "log": str(SCIFACT / "log.jsonl"),
        "qrels": str(SCIFACT / "qrels.tsv"),
        "corpus": str(SCIFACT / "corpus.jsonl"),
        "store": str(directory / "audit.duckdb"),
        "index": str(directory / "index"),
        "encoder": "hash",
        "mode": "bm25",
        **extra,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items() if value is not None]
    path = directory / "audit.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit")
    write_config(directory)
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    return directory


def test_run_json_summary_parses(workdir: Path) -> None:
    done = auditor("run", "--json", "--k", "1,10,100", cwd=workdir)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "complete" and data["run_id"]
    assert data["counts"]["read"] == data["counts"]["accepted"] == 50
    assert data["counts"]["by_status"]["ok"] == 50
    assert {
        f"{m}@{k}" for m in ("recall", "precision", "hit", "mrr", "ndcg", "judged", "complete")
        for k in (1, 10, 100)
    } <= set(data["metrics"])
    # evidence, scatter and drift from the logged answers and served lists
    for name in ("answer_coverage", "answer_coverage@10", "index_coverage", "silver_recall@10",
                 "scatter_docs", "scatter_chunks", "scatter_judged", "gatherable@10",
                 "effective_sources",
                 "overlap@10", "rbo", "served_recall@10", "recall_delta@10"):
        assert data["metrics"][name]["n"] > 0, name
    assert 0 < data["metrics"]["index_coverage"]["mean"] <= 1
    assert sum(data["sentences"].values()) > 50
    assert data["sentences"]["ungrounded"] >= 1  # the fixtures plant ungrounded sentences
    assert data["causes"]["unsupported_answer"]["queries"] >= 1
    corpus = data["corpus"]
    assert corpus["documents"] == 300 and 0 < corpus["corpus_coverage@10"] <= 1
    assert 0 <= corpus["gini"] < 1
    recall = data["metrics"]["recall@100"]
    assert recall["n"] == 50 and 0.5 < recall["mean"] <= 1.0
    assert data["metrics"]["recall@1"]["mean"] <= data["metrics"]["recall@10"]["mean"]


def test_summary_table_prints_means_and_n(workdir: Path) -> None:
    done = auditor("run", "--verbose", cwd=workdir)
    assert done.returncode == 0, done.stderr
    for word in ("complete", "recall", "ndcg", "mrr", "@10", " n "):
        assert word in done.stdout
    listing = auditor("runs", "--json", cwd=workdir)
    assert len(json.loads(listing.stdout)) >= 1


def test_bad_lines_are_quarantined_and_counts_add_up(workdir: Path) -> None:
    done = auditor("run", "--json", "--log", str(FIXTURES / "bad_log.jsonl"), cwd=workdir)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    counts = data["counts"]
    assert counts["read"] == counts["accepted"] + counts["quarantined"] + counts["blank"]
    assert (counts["accepted"], counts["quarantined"]) == (8, 5)
    with duckdb.connect(str(workdir / "audit.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT line, field, reason FROM quarantine WHERE run_id = ? ORDER BY line",
            [data["run_id"]],
        ).fetchall()
        stored = con.execute(
            "SELECT count(*) FROM query_results WHERE run_id = ?", [data["run_id"]]
        ).fetchone()[0]
    assert [line for line, _, _ in rows] == [3, 5, 8, 10, 12]
    assert all(reason for _, _, reason in rows)
    assert stored == 8


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--log", "missing.jsonl"], "missing.jsonl does not exist"),
        (["run", "--k", "ten"], "--k takes comma-separated whole numbers"),
        (["run", "--mode", "fuzzy"], "mode"),
        (["run", "--config", "nope.toml"], "config file nope.toml does not exist"),
        (["run", "--index", "no-index-here"], "auditor index build"),
        (["runs", "--store", "nowhere.duckdb"], "no results store"),
    ],
)
def test_errors_are_one_sentence_exit_2_no_traceback(
    workdir: Path, args: list[str], needle: str
) -> None:
    done = auditor(*args, cwd=workdir)
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_metrics_stored_per_query_with_nulls_for_unjudged(workdir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({"query_id": "judged", "query": "cells", "relevant": {"nope": 1}}) + "\n"
        + json.dumps({"query_id": "unjudged", "query": "cells"}) + "\n"
    )
    settings = load_settings(write_config(tmp_path, log=str(log), qrels=None,
                                          index=str(workdir / "index")))
    run_id, status = run_audit(settings)
    assert status == "complete"
    with duckdb.connect(str(settings.store), read_only=True) as con:
        values = dict(con.execute(
            "SELECT query_id, value FROM metrics WHERE run_id = ? AND metric = 'recall@10'",
            [run_id],
        ).fetchall())
    assert values == {"judged": 0.0, "unjudged": None}
    means = {row["metric"]: row for row in Store(settings.store).metric_means(run_id)}
    assert means["recall@10"]["n"] == 1 and means["recall@10"]["undefined"] == 1


class FlakyBackend:
    """Wraps a real backend; fails the replay batches it is told to (fault injection)."""

    name = "flaky"

    def __init__(self, inner: EmbeddedBackend, fail: set[int], depth: int = 100) -> None:
        self.inner, self.fail, self.depth, self.calls = inner, fail, depth, 0

    def search_many(self, queries: Sequence[str], mode, depth) -> list[SearchResult]:
        if mode == "bm25" and depth == self.depth:  # replay batches, not trace or ablations
            self.calls += 1
            if self.calls in self.fail:
                raise BackendError("index unreachable")
        return self.inner.search_many(queries, mode, depth)

    def __getattr__(self, name: str):  # fetch, contains, analyze, doc_chunks, iter_ids, ...
        return getattr(self.inner, name)


def test_failed_batch_marks_queries_and_run_partial(workdir: Path, tmp_path: Path) -> None:
    """The index fails one batch: its queries are error rows without metrics, the run is
    partial, and the run still ends with its verdict and reports before the error."""
    settings = load_settings(write_config(tmp_path, index=str(workdir / "index"),
                                          reports=str(tmp_path / "reports")), batch_size=10)
    inner = EmbeddedBackend.open(settings.index, None)
    with pytest.raises(RunStoppedEarly, match="10 of 50 queries are stored as errors") as info:
        run_audit(settings, backend=FlakyBackend(inner, fail={2}))
    run_id, status = info.value.run_id, info.value.status
    assert status == "partial" and "verdict and reports written" in str(info.value)
    assert any((tmp_path / "reports" / run_id).iterdir())
    with duckdb.connect(str(settings.store), read_only=True) as con:
        statuses = dict(con.execute(
            "SELECT status, count(*) FROM query_results WHERE run_id = ? GROUP BY status",
            [run_id],
        ).fetchall())
        reason = con.execute("SELECT status_reason FROM runs WHERE run_id = ?",
                             [run_id]).fetchone()[0]
        measured = con.execute(
            "SELECT count(DISTINCT m.query_id) FILTER (WHERE q.status = 'error'), "
            "count(DISTINCT m.query_id) FROM metrics m JOIN query_results q "
            "USING (run_id, query_id) WHERE run_id = ?", [run_id]).fetchone()
        verdicts = con.execute("SELECT count(*) FROM gates WHERE run_id = ?",
                               [run_id]).fetchone()[0]
    assert statuses == {"ok": 40, "error": 10}  # every query still has its row
    assert "10 of 50 queries failed" in reason
    assert measured == (0, 40)  # error rows get no metrics
    assert verdicts > 0


def test_index_down_stops_sending_and_run_is_failed(workdir: Path, tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, index=str(workdir / "index"),
                                          reports=str(tmp_path / "reports")), batch_size=5)
    flaky = FlakyBackend(EmbeddedBackend.open(settings.index, None), fail=set(range(1, 100)))
    with pytest.raises(RunStoppedEarly, match="50 of 50 queries") as info:
        run_audit(settings, backend=flaky)
    run_id, status = info.value.run_id, info.value.status
    assert status == "failed"
    assert flaky.calls == 3  # gave up after three failed batches in a row
    with duckdb.connect(str(settings.store), read_only=True) as con:
        n, errors = con.execute(
            "SELECT count(*), count(error) FROM query_results WHERE run_id = ?", [run_id]
        ).fetchone()
    assert n == errors == 50


@pytest.mark.model
def test_demo_from_a_clean_directory(tmp_path: Path) -> None:
    """What `make demo` runs: real MiniLM, the shipped audit.toml, fixtures → summary."""
    (tmp_path / "fixtures").symlink_to(FIXTURES)
    (tmp_path / "audit.toml").write_text((ROOT / "audit.toml").read_text())
    # A guard against a hang, not a speed check: the index build embeds every passage and
    # window with MiniLM, which took over 10 minutes on this shared machine at load 12.
    done = auditor("demo", "--no-dashboard", cwd=tmp_path, timeout=2400)
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "recall" in done.stdout
    assert (tmp_path / ".auditor" / "audit.duckdb").is_file()
    again = auditor("run", "--json", cwd=tmp_path)  # `auditor run` with no arguments works
    assert json.loads(again.stdout)["metrics"]["ndcg@10"]["n"] == 50


def _planted(kind: str) -> str:
    for line in (SCIFACT / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if kind in record["metadata"].get("planted", []):
            return record["query_id"]
    raise AssertionError(f"no planted {kind}")


def test_trace_prints_the_answer_sentence_by_sentence(workdir: Path) -> None:
    assert auditor("run", cwd=workdir).returncode == 0
    query_id = _planted("ungrounded_sentence")
    done = auditor("trace", query_id, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "■ ungrounded" in done.stdout and "■ supported" in done.stdout
    assert "unsupported_answer" in done.stdout
    as_json = json.loads(auditor("trace", query_id, "--json", cwd=workdir).stdout)
    statuses = [s["status"] for s in as_json["sentences"]]
    assert statuses.count("ungrounded") >= 1
    supported = [s for s in as_json["sentences"] if s["status"] == "supported"]
    assert supported and all(s["best_doc_id"] for s in supported)
    assert any(row["origin"] == "served" for row in as_json["support"])
    missing = auditor("trace", "no-such-query", cwd=workdir)
    assert missing.returncode == 2 and "no-such-query" in missing.stderr


def test_demo_in_a_terminal_ends_by_serving_the_dashboard(tmp_path: Path) -> None:
    """From an interactive terminal `auditor demo` starts the dashboard; from a pipe it
    does not (the test above)."""
    import pty
    import select
    import signal
    import socket
    import time
    import urllib.request

    write_config(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("AUDITOR_ES_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor.cli", "demo", "--port", str(port)], cwd=tmp_path,
        env=env, stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    seen, healthy = b"", False
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and not healthy:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
            if b"dashboard on" in seen:
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as r:
                        healthy = r.read() == b"ok"
                except OSError:
                    pass
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        os.close(leader)
    assert b"complete" in seen and healthy, seen.decode(errors="replace")[-2000:]


def test_hostile_records_are_quarantined_and_the_run_goes_on(workdir: Path, tmp_path: Path
                                                             ) -> None:
    """Issue 10: records that used to crash the run (exit 1 = "a gate failed") are
    quarantined with their field, and the counts still add up."""
    good = (SCIFACT / "log.jsonl").read_bytes().splitlines()[:3]
    log = tmp_path / "hostile.jsonl"
    log.write_bytes(b"\n".join([
        b"\xef\xbb\xbf" + good[0], *good[1:],
        b"[" * 10_000 + b"]" * 10_000,
        b'{"query_id": "x1", "query": "q", "relevant": {"d": 100000000000000000000000000000}}',
        b'{"query_id": "x2", "query": "q", "latency_ms": Infinity}',
        b'{"query_id": "x3", "query": "q", "retrieved": [{"id": "d", "score": NaN}]}',
        b'{"query_id": "x4", "query": "caf\xe9"}',
    ]) + b"\n")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_bytes((SCIFACT / "qrels.tsv").read_bytes()
                      + b"1\td1\tinf\n1\td2\t1e400\n1\td3\t100000000000000000000000\n1\td\xff\t1\n")
    done = auditor("run", "--json", "--log", str(log), "--qrels", str(qrels), cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    data = json.loads(done.stdout)
    counts = data["counts"]
    assert (counts["read"], counts["accepted"], counts["quarantined"]) == (8, 3, 5)
    assert counts["qrels_quarantined"] == 4
    with duckdb.connect(str(workdir / "audit.duckdb"), read_only=True) as con:
        fields = con.execute("SELECT source, line, field FROM quarantine WHERE run_id = ? "
                             "ORDER BY source, line", [data["run_id"]]).fetchall()
    assert [(line, field) for source, line, field in fields if source == str(log)] == [
        (4, "(record)"), (5, "relevant.d"), (6, "latency_ms"), (7, "retrieved.0.score"),
        (8, "query")]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [("log.parquet", b"", "is not a readable Parquet file"),
     ("log.parquet", b"PAR1 not really", "is not a readable Parquet file"),
     ("log.csv", b"query_id,text\n1,cats\n", "log.csv:1: the header has no query column")],
)
def test_unreadable_logs_are_one_sentence_exit_2(workdir: Path, tmp_path: Path, name: str,
                                                 content: bytes, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    done = auditor("run", "--log", str(path), cwd=workdir)
    assert done.returncode == 2 and needle in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_ablation_rankings_of_missed_queries_are_stored(workdir: Path) -> None:
    """What the judging queue pools: each missed query's other-mode rankings, to diagnose_k,
    never the run's own mode (that is in ``hits``)."""
    done = auditor("run", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    with duckdb.connect(str(workdir / "audit.duckdb"), read_only=True) as con:
        modes = dict(con.execute("SELECT mode, max(rank) FROM ablation_hits WHERE run_id = ? "
                                 "GROUP BY mode", [run_id]).fetchall())
        stray = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT query_id FROM ablation_hits WHERE run_id = $1"
            " EXCEPT SELECT query_id FROM diagnoses WHERE run_id = $1)", [run_id]).fetchone()
    assert set(modes) == {"dense"} and max(modes.values()) <= 10  # a bm25 run, diagnose_k 10
    assert stray == (0,)  # only queries that missed something were ablated
