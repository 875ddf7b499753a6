"""`auditor run --executor ray` on a real local Ray cluster (two nodes, see ``ray_node``):
the same rows as a local run, a worker killed mid-run, a driver killed mid-run, and a
cluster that does not answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from auditor.audit import run_audit
from auditor.config import load_settings
from auditor.distributed import run_distributed
from auditor.store import Store
from tests.distributed.ray_node import actor_pids, free_port, ray_env
from tests.integration.test_audit import write_config
from tests.integration.test_nightly import big_log, replayed

# every per-query table, every column but run_id
TABLES = ("query_results", "hits", "judgments", "metrics", "sentences", "support",
          "conflicts", "scatter", "diagnoses", "passages", "quarantine", "corpus_coverage",
          "ablation_hits")


def rows(path: Path, run_id: str) -> dict[str, list[tuple]]:
    """A run's rows, table by table, in one order (by every column, query_id first)."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table in TABLES:
            columns = [c for (c, *_) in con.execute(f"DESCRIBE {table}").fetchall()
                       if c != "run_id"]
            if "query_id" in columns:
                columns.insert(0, columns.pop(columns.index("query_id")))
            if table == "ablation_hits":  # raw dense cosines: the last bits follow the batch
                columns[columns.index("score")] = "round(score, 6)"
            out[table] = con.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? ORDER BY ALL",
                [run_id]).fetchall()
    return out


def run_level(path: Path, run_id: str) -> dict:
    """The run's counts, corpus numbers included; the cache's own counters differ by design
    (two workers may both embed a text a local run embeds once)."""
    counts = dict(Store(path).run(run_id)["counts"])
    counts.pop("embedding_cache")
    return counts


def auditor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args], cwd=cwd,
                          env={**ray_env(), "COLUMNS": "120"}, text=True,
                          capture_output=True, timeout=1200)


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A local run of the SciFact fixture (hybrid, traced, ablations; hash encoder) with
    two bad log lines, in batches of 10: what every Ray run here must reproduce."""
    directory = tmp_path_factory.mktemp("ray-audit")
    log, qrels = big_log(directory, copies=2)
    write_config(directory, log=str(log), qrels=str(qrels), mode="hybrid", batch_size=10,
                 baseline="none")
    assert auditor("index", "build", cwd=directory).returncode == 0
    run_id, status = run_audit(settings(directory, store=directory / "local.duckdb"))
    assert status == "complete"
    return directory, run_id


def settings(directory: Path, **overrides: object):
    return load_settings(directory / "audit.toml", **overrides)


def assert_same_as_local(fixture_run: tuple[Path, str], path: Path, run_id: str) -> None:
    directory, local = fixture_run
    got, want = rows(path, run_id), rows(directory / "local.duckdb", local)
    for table in TABLES:
        assert got[table] == want[table], table
    assert len(got["query_results"]) == 100
    assert run_level(path, run_id) == run_level(directory / "local.duckdb", local)


def test_a_ray_run_stores_the_rows_of_a_local_run(fixture_run, ray_address: str) -> None:
    """Through the CLI as a user types it: two actors on a two-node cluster."""
    directory, _ = fixture_run
    done = auditor("run", "--executor", "ray", "--ray-address", ray_address, "--workers", "2",
                   "--store", "ray.duckdb", "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    [run] = Store(directory / "ray.duckdb").runs()
    stored = Store(directory / "ray.duckdb").run(run["run_id"])
    assert stored["status"] == "complete" and stored["config"]["executor"] == "ray"
    assert_same_as_local(fixture_run, directory / "ray.duckdb", run["run_id"])


def test_a_worker_killed_mid_run_has_its_shards_retried(fixture_run, ray_address: str
                                                        ) -> None:
    """SIGKILL one actor's process once the first shard is stored: Ray restarts the actor
    and retries its shards; every query is stored once and the rows are a local run's."""
    directory, _ = fixture_run
    path = directory / "killed.duckdb"
    killed: list[int] = []

    def kill_one(_: int) -> None:
        if not killed:
            pids = actor_pids("ShardWorker")
            assert pids, "no ShardWorker process to kill"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    run_id, status = run_distributed(
        settings(directory, store=path, executor="ray", ray_address=ray_address, workers=2),
        progress=kill_one)
    assert killed and status == "complete"
    assert replayed(path) < 101  # and the comparison below finds no duplicate
    assert_same_as_local(fixture_run, path, run_id)


def test_a_killed_driver_resumes(fixture_run, ray_address: str) -> None:
    """SIGKILL the driver after some shards are stored; `--resume` (executor, address and
    workers come from the stored run) completes it to the rows of a local run."""
    directory, _ = fixture_run
    path = directory / "resumed.duckdb"
    driver = subprocess.Popen(
        [sys.executable, "-m", "auditor.cli", "run", "--executor", "ray", "--ray-address",
         ray_address, "--workers", "1", "--store", str(path)],
        # every shard written at once: the run is killed between two writes, not before one
        cwd=directory, env={**ray_env(), "AUDITOR_FLUSH_SECONDS": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while replayed(path) < 20 and driver.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert 20 <= replayed(path) < 100, "the driver was not killed mid-way"
    [run] = Store(path).runs()
    done = auditor("run", "--resume", run["run_id"], "--store", str(path), "--json",
                   cwd=directory)
    assert done.returncode == 0, done.stderr
    assert Store(path).run(run["run_id"])["status"] == "complete"
    assert_same_as_local(fixture_run, path, run["run_id"])


def test_an_unreachable_ray_address_is_one_sentence_and_exit_2(fixture_run) -> None:
    directory, _ = fixture_run
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = auditor("run", "--executor", "ray", "--ray-address", address, "--store",
                   "nowhere.duckdb", cwd=directory)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and f"no Ray cluster answers at {address}" \
        in done.stderr, done.stderr
    assert not (directory / "nowhere.duckdb").exists()  # nothing was started
