"""The nightly job as a team runs it: `auditor run --baseline last` twice, gates, reports,
the webhook, the embedding cache, resume refusals, and the scheduler (a run killed with
SIGKILL and resumed: tests/integration/test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from auditor.store import Store, StoreError
from tests.conftest import FIXTURES
from tests.stores import removed_documents

from .test_audit import auditor, write_config

SCIFACT = FIXTURES / "scifact"
GATES = (
    '\n[[gates]]\nmetric = "recall@10"\nmax_drop = 0.02\n'
    '\n[[gates]]\nmetric = "ndcg@10"\nmin = 0.30\n'
)


class Webhook:
    """A local HTTP server standing in for a Slack incoming webhook."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/S3CR3T-TOKEN"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def run_json(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> tuple[int, dict, str]:
    environment = {**os.environ, "COLUMNS": "120", **(env or {})}
    environment.pop("AUDITOR_ES_URL", None)
    done = subprocess.run([sys.executable, "-m", "auditor.cli", *args, "--json"], cwd=cwd,
                          env=environment, text=True, capture_output=True, timeout=600)
    data = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, data, done.stderr


def test_deleted_documents_fail_the_gate_and_alert(tmp_path: Path, webhook: Webhook) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + GATES)
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    env = {"AUDITOR_WEBHOOK_URL": webhook.url}
    code, first, stderr = run_json("run", "--baseline", "last", cwd=tmp_path, env=env)
    assert code == 0, stderr
    assert first["verdict"]["passed"] and first["verdict"]["baseline_run_id"] is None

    removed = set(removed_documents())
    kept = [line for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()
            if json.loads(line)["_id"] not in removed]
    (tmp_path / "corpus.jsonl").write_text("\n".join(kept) + "\n")
    assert auditor("index", "build", "--corpus", "corpus.jsonl", cwd=tmp_path).returncode == 0

    code, second, stderr = run_json("run", "--baseline", "last", cwd=tmp_path, env=env)
    assert code == 1, stderr
    verdict = second["verdict"]
    assert verdict["baseline_run_id"] == first["run_id"]
    failed = [g for g in verdict["gates"] if not g["passed"]]
    assert [g["metric"] for g in failed] == ["recall@10"]
    assert "significant" in failed[0]["reason"]
    assert verdict["regressed_total"] >= 5 and "not_indexed" in verdict["new_causes"]
    assert webhook.url not in stderr and "S3CR3T" not in stderr + json.dumps(second)

    markdown = Path(verdict["reports"]["md"]).read_text().replace("\\", "")  # md escapes
    assert "recall@10" in markdown and "not_indexed" in markdown
    assert any(query_id in markdown for query_id in verdict["regressed"])
    suite = ET.parse(verdict["reports"]["junit"]).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == 2 and len(suite.findall(".//testcase/failure")) == 1

    assert len(webhook.received) == 1
    payload = webhook.received[0]["json"]
    assert webhook.received[0]["path"].endswith("S3CR3T-TOKEN")
    assert "recall@10" in payload["text"] and second["run_id"] in payload["text"]
    assert payload["auditor"]["run_id"] == second["run_id"]

    # a report can be rendered again later, in any format
    done = auditor("report", second["run_id"], "--format", "junit", cwd=tmp_path)
    assert done.returncode == 0 and ET.fromstring(done.stdout).findall(".//failure")


def test_unchanged_index_passes_and_embeds_nothing_new(tmp_path: Path) -> None:
    write_config(tmp_path, mode="hybrid")
    built = auditor("index", "build", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    code, first, stderr = run_json("run", cwd=tmp_path)
    assert code == 0, stderr
    assert first["counts"]["embedding_cache"]["encoded"] > 0  # queries and answer sentences
    code, second, stderr = run_json("run", "--baseline", "last", cwd=tmp_path)
    assert code == 0, stderr
    verdict = second["verdict"]
    assert verdict["baseline_run_id"] == first["run_id"]
    assert verdict["passed"] and verdict["regressed_total"] == 0
    cache = second["counts"]["embedding_cache"]
    assert cache["lookups"] > 100 and cache["encoded"] == 0 and cache["hit_rate"] == 1.0
    rebuilt = auditor("index", "build", cwd=tmp_path)
    assert "embedding cache: 100% hits" in " ".join(rebuilt.stdout.split())


def test_manifest_traces_every_number(nightly_store) -> None:
    run = Store(nightly_store.path).run(nightly_store.run_id)
    manifest = run["manifest"]
    assert len(manifest["config_digest"]) == 64
    assert manifest["index"]["document_count"] == 300 - len(nightly_store.removed_docs)
    assert manifest["embedding_model"] == "hash-bow-384"
    assert manifest["thresholds"]["k"] == 10 and 0 < manifest["thresholds"]["support"] < 1
    assert manifest["code_version"].startswith("0.")
    assert manifest["log"]["first_logged_at"] <= manifest["log"]["last_logged_at"]
    assert manifest["counts"]["replayed"] == 50
    assert run["baseline_run_id"] == nightly_store.baseline_run_id
    assert run["gate_status"] == "failed"


def test_last_passing_skips_failed_runs(nightly_store) -> None:
    store = Store(nightly_store.path)
    assert store.resolve_baseline("last-passing") == nightly_store.baseline_run_id
    assert store.resolve_baseline("last") == nightly_store.run_id
    assert store.resolve_baseline("last", nightly_store.run_id) == nightly_store.baseline_run_id
    with pytest.raises(StoreError, match="not in"):
        store.resolve_baseline("no-such-run")


def big_log(directory: Path, copies: int) -> tuple[Path, Path]:
    """The fixture log repeated under new query ids, with two bad lines in the middle."""
    records = [json.loads(line) for line in (SCIFACT / "log.jsonl").read_text().splitlines()]
    qrels = (SCIFACT / "qrels.tsv").read_text().splitlines()
    lines, judged = [], [qrels[0]]
    for copy in range(copies):
        for record in records:
            lines.append(json.dumps({**record, "query_id": f"{record['query_id']}-{copy}"}))
        judged += [f"{q}-{copy}\t{rest}" for q, rest in
                   (row.split("\t", 1) for row in qrels[1:])]
        if copy == copies // 2:
            lines += ['{"query_id": "bad-1"}', "{not json"]
    log, qrels_file = directory / "big.jsonl", directory / "big-qrels.tsv"
    log.write_text("\n".join(lines) + "\n")
    qrels_file.write_text("\n".join(judged) + "\n")
    return log, qrels_file


def replayed(path: Path) -> int:
    """Rows stored so far; the audit may hold the file for a moment, so retry."""
    for _ in range(100):
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                return con.execute("SELECT count(*) FROM query_results").fetchone()[0]
        except (duckdb.IOException, duckdb.CatalogException):
            time.sleep(0.02)
    return 0


def test_resume_refuses_a_complete_run(nightly_store, tmp_path: Path) -> None:
    done = auditor("run", "--resume", nightly_store.run_id, "--store", str(nightly_store.path),
                   cwd=tmp_path)
    assert done.returncode == 2 and "already complete" in done.stderr


def test_schedule_runs_the_audit_and_reports(tmp_path: Path) -> None:
    write_config(tmp_path)
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    done = auditor("schedule", "--cron", "0 2 * * *", "--run-now", "--max-runs", "1",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "scheduled '0 2 * * *'" in done.stdout
    assert "complete, gates not evaluated" in done.stdout  # first run: no baseline
    assert len(Store(tmp_path / "audit.duckdb").runs()) == 1


def test_schedule_rejects_a_bad_cron_line(tmp_path: Path) -> None:
    write_config(tmp_path)
    done = auditor("schedule", "--cron", "every night", cwd=tmp_path)
    assert done.returncode == 2 and "five-field crontab" in done.stderr


def test_next_fire_time_of_a_nightly_cron() -> None:
    from datetime import datetime

    from auditor.schedule import trigger

    now = datetime.fromisoformat("2026-11-24T13:00:00+00:00")
    fire = trigger("0 2 * * *", "UTC").get_next_fire_time(None, now)
    assert fire.isoformat() == "2026-11-25T02:00:00+00:00"


def test_every_cited_chunk_keeps_its_text_in_the_store(nightly_store) -> None:
    """The answer trace can be read without the index (e.g. an Elasticsearch run)."""
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        missing = con.execute(
            "SELECT count(*) FROM (SELECT run_id, chunk_id FROM support UNION "
            "SELECT run_id, best_chunk_id FROM sentences WHERE best_chunk_id IS NOT NULL) c "
            "ANTI JOIN passages p USING (run_id, chunk_id)").fetchone()[0]
        stored, empty = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE text IS NULL OR text = '') "
            "FROM passages").fetchone()
    assert missing == 0 and stored > 50 and empty == 0


def test_dashboard_command_serves_the_store(nightly_store, tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ}
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor.cli", "dashboard", "--store", str(nightly_store.path),
         "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=5) as reply:
                    assert reply.read() == b"ok"
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_dashboard_without_a_store_is_one_sentence(tmp_path: Path) -> None:
    done = auditor("dashboard", "--store", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert done.returncode == 2 and "no results store" in done.stderr


def test_export_command_writes_files_an_independent_tool_agrees_with(nightly_store,
                                                                     tmp_path: Path) -> None:
    import ir_measures

    run_file, qrels_file = tmp_path / "run.trec", tmp_path / "qrels.txt"
    done = auditor("export", nightly_store.run_id, "--run-file", str(run_file),
                   "--qrels-file", str(qrels_file), "--store", str(nightly_store.path),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    measured = ir_measures.calc_aggregate(
        [ir_measures.nDCG @ 10, ir_measures.R @ 10],
        ir_measures.read_trec_qrels(str(qrels_file)), ir_measures.read_trec_run(str(run_file)))
    means = {m["metric"]: m["mean"] for m in Store(nightly_store.path).metric_means(
        nightly_store.run_id)}
    assert measured[ir_measures.nDCG @ 10] == pytest.approx(means["ndcg@10"], abs=1e-9)
    assert measured[ir_measures.R @ 10] == pytest.approx(means["recall@10"], abs=1e-9)
