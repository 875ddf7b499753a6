"""The `auditor` command against Elasticsearch: a real node, and one that is not there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import FIXTURES


def auditor(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditor.cli", *args], cwd=cwd, text=True, capture_output=True,
        env={**os.environ, "COLUMNS": "120", **env}, timeout=600,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fixture_flags(tmp_path: Path) -> list[str]:
    scifact = FIXTURES / "scifact"
    return ["--log", str(scifact / "log.jsonl"), "--qrels", str(scifact / "qrels.tsv"),
            "--store", str(tmp_path / "audit.duckdb")]


@pytest.mark.elasticsearch
def test_index_build_and_run_against_a_real_node(es_url: str, tmp_path: Path) -> None:
    index = f"auditor-test-cli-{uuid.uuid4().hex[:6]}"
    env = {"AUDITOR_ES_URL": es_url, "AUDITOR_ES_INDEX": index, "AUDITOR_ENCODER": "hash"}
    built = auditor("index", "build", "--backend", "elasticsearch", "--corpus",
                    str(FIXTURES / "scifact" / "corpus.jsonl"), cwd=tmp_path, **env)
    assert built.returncode == 0, built.stderr
    try:
        for mode in ("bm25", "knn", "hybrid"):
            done = auditor("run", "--backend", "elasticsearch", "--mode", mode, "--json",
                           *fixture_flags(tmp_path), cwd=tmp_path, **env)
            assert done.returncode == 0, done.stderr
            data = json.loads(done.stdout)
            assert data["status"] == "complete" and data["backend"] == "elasticsearch"
            assert data["counts"]["by_status"]["ok"] == 50
            assert data["metrics"]["recall@100"]["n"] == 50
            assert data["metrics"]["recall@100"]["mean"] > 0.5
    finally:
        from elasticsearch import Elasticsearch

        with Elasticsearch(es_url) as client:
            client.options(ignore_status=404).indices.delete(index=index)


def test_unreachable_node_is_one_sentence_exit_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = auditor("run", "--backend", "elasticsearch", *fixture_flags(tmp_path), cwd=tmp_path,
                   AUDITOR_ES_URL=url, AUDITOR_ES_MAX_RETRIES="0", AUDITOR_ES_API_KEY="k-e-y-42")
    assert done.returncode == 2
    assert f"Elasticsearch at {url} is not answering" in done.stderr
    assert "AUDITOR_ES_URL" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "k-e-y-42" not in done.stderr + done.stdout


@pytest.mark.elasticsearch
def test_missing_index_says_how_to_build_it(es_url: str, tmp_path: Path) -> None:
    done = auditor("run", "--backend", "elasticsearch", *fixture_flags(tmp_path), cwd=tmp_path,
                   AUDITOR_ES_URL=es_url, AUDITOR_ES_INDEX="auditor-test-no-such-index")
    assert done.returncode == 2
    assert "auditor-test-no-such-index" in done.stderr and "index build" in done.stderr
    assert "Traceback" not in done.stderr
