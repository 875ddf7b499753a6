"""Faults and concurrency, with real processes: two runs and readers on one store, a run
killed with SIGKILL, Elasticsearch cut mid-run, a dashboard stopped with SIGTERM, and
credentials inside ``es_url``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from auditor.store import Store, StoreError

from .test_audit import auditor, write_config
from .test_nightly import big_log, replayed, run_json


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("AUDITOR_ES_URL", None)
    return env


# concurrency ---------------------------------------------------------------------------
def test_two_runs_and_readers_on_one_store_all_succeed(tmp_path: Path) -> None:
    """Writers wait for each other; `auditor runs` and store reads during the writes wait
    too (never "busy"); both runs write their reports."""
    log, qrels = big_log(tmp_path, copies=4)
    write_config(tmp_path, log=str(log), qrels=str(qrels), batch_size=10, baseline="none")
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    command = [sys.executable, "-m", "auditor.cli", "run", "--json"]
    writers = [subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    store = Store(tmp_path / "audit.duckdb")
    failures: list[str] = []
    reads = 0

    def read_in_process() -> None:
        nonlocal reads
        while any(w.poll() is None for w in writers):
            try:
                store.runs()
                with store.connect(read_only=True) as con:
                    con.execute("SELECT count(*) FROM query_results").fetchone()
                reads += 1
            except StoreError as exc:  # before the first run creates the file, or busy
                if store.path.exists():
                    failures.append(str(exc))
            time.sleep(0.01)

    reader = threading.Thread(target=read_in_process)
    reader.start()
    listed = 0
    while any(w.poll() is None for w in writers):
        if store.path.exists():
            done = subprocess.run([sys.executable, "-m", "auditor.cli", "runs", "--json"],
                                  cwd=tmp_path, env=_env(), capture_output=True, text=True)
            if done.returncode != 0:
                failures.append(done.stderr)
            listed += 1
    reader.join()
    outputs = [w.communicate() for w in writers]
    for writer, (stdout, stderr) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, stderr
        assert json.loads(stdout)["status"] == "complete"
    assert not failures, failures[:3]
    assert reads > 0 and listed > 0
    runs = store.runs()
    assert [r["status"] for r in runs] == ["complete", "complete"]
    for run in runs:
        folder = tmp_path / ".auditor" / "reports" / run["run_id"]
        assert folder.is_dir() and any(folder.iterdir()), folder
    assert not [p for p in (tmp_path / ".auditor" / "reports").iterdir()
                if p.is_dir() and not any(p.iterdir())]


def test_a_reader_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    """A store held by another process past the timeout: one sentence, after the wait."""
    path = tmp_path / "s.duckdb"
    Store(path).append({})  # creates the file and its tables
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ok', flush=True); time.sleep(2)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        with pytest.raises(StoreError, match="busy"):
            Store(path, busy_timeout_s=0.5).runs()
        assert time.monotonic() - started >= 0.5
        assert Store(path, busy_timeout_s=30).runs() == []  # waits the holder out
    finally:
        holder.kill()
        holder.wait()


# a run killed with SIGKILL ----------------------------------------------------------------
def stored_rows(path: Path, run_id: str) -> dict[str, list[tuple]]:
    queries = {
        "query_results": "SELECT seq, query_id, status, n_hits, answer FROM query_results",
        "hits": "SELECT seq, query_id, rank, chunk_id, doc_id, round(score, 9) FROM hits",
        "metrics": "SELECT query_id, metric, round(value, 9) FROM metrics",
        "diagnoses": "SELECT query_id, cause, target_id FROM diagnoses WHERE cause <> 'slow'",
        "sentences": "SELECT query_id, idx, status, best_chunk_id FROM sentences",
        "quarantine": "SELECT source, line, field FROM quarantine",
        "corpus_coverage": "SELECT doc_id, retrieved_at_k, best_rank FROM corpus_coverage",
    }
    with duckdb.connect(str(path), read_only=True) as con:
        return {name: sorted(con.execute(f"{sql} WHERE run_id = ?" if "WHERE" not in sql
                                         else f"{sql} AND run_id = ?", [run_id]).fetchall(),
                             key=repr)
                for name, sql in queries.items()}


def test_sigkilled_run_shows_interrupted_and_resumes_to_the_same_rows(tmp_path: Path) -> None:
    """A run killed mid-way (after some batches are stored, before the last) is listed as
    interrupted, and `--resume` completes it to exactly the rows of an uninterrupted run.

    100 queries in batches of 10 (with two bad lines mid-log) are enough: the kill lands
    after at least two stored batches and before the tenth, which the assertions check."""
    log, qrels = big_log(tmp_path, copies=2)
    write_config(tmp_path, log=str(log), qrels=str(qrels), batch_size=10, baseline="none")
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    code, whole, stderr = run_json("run", "--store", "whole.duckdb", cwd=tmp_path)
    assert code == 0, stderr

    path = tmp_path / "audit.duckdb"
    process = subprocess.Popen([sys.executable, "-m", "auditor.cli", "run"], cwd=tmp_path,
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while replayed(path) < 20 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        [run] = Store(path).runs()
        assert run["status"] == "running" and run["owner"]["pid"] == process.pid
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done_before = replayed(path)
    assert 20 <= done_before < 100, "the run was not killed mid-way"
    [run] = Store(path).runs()
    assert run["status"] == "interrupted" and "--resume" in run["status_reason"]
    assert "interrupted" in auditor("runs", cwd=tmp_path).stdout

    code, resumed, stderr = run_json("run", "--resume", run["run_id"], cwd=tmp_path)
    assert code == 0, stderr
    assert resumed["run_id"] == run["run_id"] and resumed["status"] == "complete"
    assert resumed["counts"]["replayed"] == 100 and resumed["counts"]["quarantined"] == 2
    assert Store(path).run(run["run_id"])["status"] == "complete"
    got, want = stored_rows(path, run["run_id"]), stored_rows(tmp_path / "whole.duckdb",
                                                              whole["run_id"])
    for table in want:
        assert got[table] == want[table], table
    seqs = [row[0] for row in got["query_results"]]
    assert sorted(seqs) == list(range(100))  # no gaps, no duplicates


def test_resume_is_refused_while_the_owner_process_lives(tmp_path: Path) -> None:
    """The run's owner is this test process, alive: `--resume` says so, exit 2."""
    write_config(tmp_path, baseline="none")
    store = Store(tmp_path / "audit.duckdb")
    store.create_run("r1", backend="embedded", mode="bm25", level="doc",
                     config={"log": "x.jsonl"}, fingerprint={}, code_version="0")
    refused = auditor("run", "--resume", "r1", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert f"still running in process {os.getpid()}" in refused.stderr
    with pytest.raises(StoreError, match="still running"):
        store.reopen_run("r1")


def test_runs_of_old_stores_without_owner_show_interrupted(tmp_path: Path) -> None:
    """A store written before owners were recorded: its stuck `running` rows are
    interrupted (no process of that code can still be writing after the upgrade)."""
    path = tmp_path / "old.duckdb"
    store = Store(path)
    store.create_run("r1", backend="embedded", mode="bm25", level="doc", config={},
                     fingerprint={}, code_version="0")
    assert store.run("r1")["status"] == "running"  # this process owns it
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE runs SET owner = NULL")
    assert store.run("r1")["status"] == "interrupted"
    assert [r["status"] for r in store.runs()] == ["interrupted"]


SECRET = "s3cr3t-pw-9f"


def assert_no_secret(output: str, store: Path, reports: Path | None = None) -> None:
    """The password is in no output, no stored byte and no report."""
    assert SECRET not in output
    assert SECRET.encode() not in store.read_bytes()
    for file in (reports.rglob("*") if reports else []):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


# Elasticsearch cut mid-run --------------------------------------------------------------
class CuttableProxy:
    """A TCP proxy in front of the node; ``cut()`` drops every connection and refuses new
    ones, as a node that stops (or a network that fails) does."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition("//")[2].rstrip("/").partition(":")
        self.target = (host, int(port or 9200))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.down = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the thread
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for end in self.open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


@pytest.mark.elasticsearch
def test_elasticsearch_cut_mid_run_stores_a_row_per_query_and_reports(
        es_url: str, tmp_path: Path) -> None:
    log, qrels = big_log(tmp_path, copies=8)  # 400 accepted queries (and 2 bad lines)
    write_config(tmp_path, log=str(log), qrels=str(qrels), batch_size=10, baseline="none",
                 backend="elasticsearch")
    index = f"auditor-test-faults-{uuid.uuid4().hex[:6]}"
    env = {**_env(), "AUDITOR_ES_INDEX": index, "AUDITOR_ES_MAX_RETRIES": "0"}
    built = subprocess.run([sys.executable, "-m", "auditor.cli", "index", "build"],
                           cwd=tmp_path, env={**env, "AUDITOR_ES_URL": es_url},
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    proxy = CuttableProxy(es_url)
    path = tmp_path / "audit.duckdb"
    try:
        # credentials in the URL (the test node ignores them): never stored nor printed
        url = proxy.url.replace("//", f"//auditor:{SECRET}@")
        process = subprocess.Popen(
            [sys.executable, "-m", "auditor.cli", "run"], cwd=tmp_path,
            env={**env, "AUDITOR_ES_URL": url}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while replayed(path) < 100 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proxy.cut()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        proxy.cut()
        from elasticsearch import Elasticsearch

        with Elasticsearch(es_url) as client:
            client.options(ignore_status=404).indices.delete(index=index)
    assert process.returncode == 2, stdout + stderr
    assert "the index failed" in stderr and "Traceback" not in stderr
    [run] = Store(path).runs()
    assert run["status"] == "partial"
    with duckdb.connect(str(path), read_only=True) as con:
        rows = dict(con.execute("SELECT status, count(*) FROM query_results GROUP BY ALL")
                    .fetchall())
        not_sent = con.execute("SELECT count(*) FROM query_results WHERE error LIKE "
                               "'not sent:%'").fetchone()[0]
        unexplained = con.execute("SELECT count(*) FROM query_results WHERE status = 'error' "
                                  "AND coalesce(error, '') = ''").fetchone()[0]
        measured_errors = con.execute(
            "SELECT count(*) FROM metrics m JOIN query_results q USING (run_id, query_id) "
            "WHERE q.status = 'error'").fetchone()[0]
        gates = con.execute("SELECT count(*) FROM gates").fetchone()[0]
        latency = con.execute(
            "SELECT count(*) FILTER (WHERE status = 'ok' AND replay_latency_ms IS DISTINCT "
            "FROM took_ms), count(*) FILTER (WHERE status = 'error' AND replay_latency_ms IS "
            "NOT NULL), count(*) FILTER (WHERE status = 'ok' AND took_ms IS NULL) "
            "FROM query_results"
        ).fetchone()
    assert latency == (0, 0, 0)  # each query's own `took`; none for errors
    assert sum(rows.values()) == 400, rows  # every accepted query has its row
    assert 100 <= rows["ok"] < 400 and rows["error"] == 400 - rows["ok"], rows
    assert not_sent > 0 and unexplained == 0
    assert measured_errors == 0
    assert gates > 0
    folder = tmp_path / ".auditor" / "reports" / run["run_id"]
    assert folder.is_dir() and any(folder.iterdir())
    assert_no_secret(stdout + stderr, path, folder)


# per-query latency ----------------------------------------------------------------------
def test_latency_is_each_querys_own_or_none(scifact_index) -> None:
    """bm25 scores query by query: each has its own time. The vector modes answer a batch at
    once: no per-query figure (None), never the batch's time divided by its size."""
    from auditor.records import LogRecord
    from auditor.replay import Replayer

    queries = ["vitamin d deficiency", "a", "protein folding in yeast cells under stress",
               "zebrafish", "cancer"] * 4
    records = [LogRecord(query_id=f"q{i}", query=q) for i, q in enumerate(queries)]
    rows = Replayer(scifact_index, "bm25", 100).replay(records)
    values = [row.replay_latency_ms for row in rows]
    assert all(v is not None and v >= 0 for v in values)
    assert len(set(values)) > 1
    dense = Replayer(scifact_index, "dense", 100).replay(records)
    assert {row.replay_latency_ms for row in dense} == {None}


# credentials inside es_url --------------------------------------------------------------
def test_credentials_in_es_url_become_secrets() -> None:
    from auditor.config import AuditSettings

    settings = AuditSettings(es_url=f"https://ops%40corp:{SECRET}@es.example:9243/")
    assert settings.es_url == "https://es.example:9243/"
    assert settings.es_username.get_secret_value() == "ops@corp"
    assert settings.es_password.get_secret_value() == SECRET
    snapshot = json.dumps(settings.snapshot())
    assert SECRET not in snapshot and "ops" not in snapshot
    assert settings.snapshot()["es_credentials"] == "set"
    explicit = AuditSettings(es_url=f"http://u:{SECRET}@h:9200", es_api_key="k-1")
    assert explicit.es_url == "http://h:9200" and explicit.es_password is None


def test_unreachable_node_with_credentials_in_url_prints_none(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_config(tmp_path, backend="elasticsearch")
    done = subprocess.run([sys.executable, "-m", "auditor.cli", "run"], cwd=tmp_path,
                          env={**_env(), "AUDITOR_ES_URL": f"http://me:{SECRET}@127.0.0.1:{port}",
                               "AUDITOR_ES_MAX_RETRIES": "0"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"http://127.0.0.1:{port}" in done.stderr
    assert SECRET not in done.stdout + done.stderr and "me:" not in done.stderr


def test_migration_scrubs_credentials_stored_by_older_versions(tmp_path: Path) -> None:
    """A store written before the scrub: its run configs held the URL as given."""
    from auditor.store import MIGRATIONS

    path = tmp_path / "old.duckdb"
    store = Store(path)
    store.create_run("r1", backend="elasticsearch", mode="bm25", level="doc",
                     config={"es_url": f"http://me:{SECRET}@es:9200", "es_credentials": None},
                     fingerprint={}, code_version="0")
    store.finish_run("r1", "failed", f"stopped by error: http://me:{SECRET}@es:9200 down", {})
    assert "m007_scrub_es_url" in MIGRATIONS
    with duckdb.connect(str(path)) as con:  # as the older version left it
        con.execute("DELETE FROM schema_migrations WHERE name = 'm007_scrub_es_url'")
    store.append({})  # a writer opens the file: pending migrations run
    run = store.run("r1")
    assert run["config"] == {"es_url": "http://es:9200", "es_credentials": "set"}
    assert run["status_reason"] == "stopped by error: http://es:9200 down"


# the dashboard's Streamlit child ---------------------------------------------------------
def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][0] not in "ZX"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_dashboard_stops_streamlit(tmp_path: Path, stop_with: int) -> None:
    """SIGTERM: the launcher stops its child first. SIGKILL (no handler can run): the kernel
    kills the child (PR_SET_PDEATHSIG). Either way the port is free again."""
    import urllib.request

    store = tmp_path / "audit.duckdb"
    Store(store).append({})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "auditor.cli", "dashboard", "--store", str(store), "--port",
         str(port)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            children = children or _children(launcher.pid)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the dashboard never became healthy")
        children = children or _children(launcher.pid)
        assert children, "streamlit runs as the launcher's child"
        launcher.send_signal(stop_with)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (_port_open(port) or any(map(_running, children))) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _port_open(port)
        assert not any(map(_running, children))
    finally:
        launcher.kill()
        launcher.wait()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


# peak memory ------------------------------------------------------------------------------
def test_peak_memory_is_flat_in_the_number_of_queries(tmp_path: Path) -> None:
    """bench/memory.py at small sizes: a 20k-query run peaks within 1.3x of a 2k-query run
    (before the corpus pass was bounded: 1.37x here, 3.0x at 10k vs 100k)."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_memory", ROOT / "bench" / "memory.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.build_index(tmp_path)
    small, large = bench.measure(tmp_path, 2_000), bench.measure(tmp_path, 20_000)
    assert large["peak_rss_mb"] <= 1.3 * small["peak_rss_mb"], (small, large)
