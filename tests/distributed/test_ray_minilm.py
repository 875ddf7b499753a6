"""A Ray run with the real all-MiniLM-L6-v2 model stores a local run's rows (marker
``model``): ten fixture queries with answers, hybrid search, answers traced, ablations on.

Workers embed queries and answer sentences in other batches than the local run does (a shard
is a hash bucket, not a slice of the log), and a float32 vector embedded in another batch
differs in its last bits, so floats are compared rounded as the golden test rounds them
(``tests.golden.capture.mask``: 6 decimals, inside JSON evidence too)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from auditor.audit import run_audit
from auditor.distributed import run_distributed
from tests.distributed.test_ray_executor import TABLES, auditor, run_level, settings
from tests.golden.capture import VOLATILE_KEYS, mask
from tests.integration.test_audit import SCIFACT, write_config

pytestmark = pytest.mark.model
QUERIES = 10


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ten fixture records with an answer, indexed and audited locally."""
    directory = tmp_path_factory.mktemp("ray-minilm")
    records = [json.loads(line) for line in (SCIFACT / "log.jsonl").read_text().splitlines()]
    chosen = [r for r in records if r.get("answer")][:QUERIES]
    assert len(chosen) == QUERIES
    log = directory / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    write_config(directory, log=str(log), encoder="minilm", mode="hybrid", batch_size=4,
                 baseline="none", reports=str(directory / "reports"))
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    return directory


def rounded(path: Path, run_id: str) -> dict[str, list]:
    """A run's rows, table by table, without the clocks (replay latency: timed per query),
    floats rounded as the golden test rounds them, in one order."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table in TABLES:
            columns = [c for (c, *_) in con.execute(f"DESCRIBE {table}").fetchall()
                       if c != "run_id" and c not in VOLATILE_KEYS]
            found = con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ?",
                                [run_id]).fetchall()
            out[table] = sorted((mask(list(row)) for row in found), key=repr)
    return out


def test_a_ray_run_with_minilm_stores_the_rows_of_a_local_run(minilm_dir: Path,
                                                              ray_address: str) -> None:
    local, status = run_audit(settings(minilm_dir, store=minilm_dir / "local.duckdb"))
    assert status == "complete"
    ray_run, status = run_distributed(settings(
        minilm_dir, store=minilm_dir / "ray.duckdb", executor="ray", ray_address=ray_address,
        workers=2))
    assert status == "complete"
    got = rounded(minilm_dir / "ray.duckdb", ray_run)
    want = rounded(minilm_dir / "local.duckdb", local)
    assert len(want["query_results"]) == QUERIES and want["sentences"] and want["support"]
    for table in TABLES:
        assert got[table] == want[table], table
    assert mask(run_level(minilm_dir / "ray.duckdb", ray_run)) == mask(
        run_level(minilm_dir / "local.duckdb", local))
