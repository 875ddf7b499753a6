"""A sampled run end to end (embedded index, bm25, hash encoder): the same seed picks the same
queries on two nights whose logs share most query ids, another seed picks others, and the
manifest holds the sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.store import Store
from auditor.store.read.sample import query_strata
from tests.conftest import FIXTURES

from .test_audit import auditor, write_config
from .test_nightly import run_json

SCIFACT = FIXTURES / "scifact"
LINES = (SCIFACT / "log.jsonl").read_text().splitlines()
FAST = {"trace": False, "ablations": False, "self_probe": False}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index, and two nights' logs: 45 lines each, 40 query ids in common."""
    directory = tmp_path_factory.mktemp("sampled")
    write_config(directory, **FAST)
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    (directory / "monday.jsonl").write_text("\n".join(LINES[:45]) + "\n")
    (directory / "tuesday.jsonl").write_text("\n".join(LINES[5:]) + "\n")
    return directory


def ids(line_block: list[str]) -> set[str]:
    return {json.loads(line)["query_id"] for line in line_block}


def sampled(workdir: Path, log: str, *flags: str) -> tuple[dict, set[str]]:
    code, data, stderr = run_json("run", "--log", log, "--baseline", "none", *flags,
                                  cwd=workdir)
    assert code == 0, stderr
    return data, set(query_strata(Store(workdir / "audit.duckdb"), data["run_id"], None))


def test_the_same_seed_picks_the_same_queries_on_two_nights(workdir: Path) -> None:
    shared = ids(LINES[5:45])
    _, monday = sampled(workdir, "monday.jsonl", "--sample-rate", "0.5", "--seed", "3")
    _, tuesday = sampled(workdir, "tuesday.jsonl", "--sample-rate", "0.5", "--seed", "3")
    assert monday & shared == tuesday & shared
    assert 10 <= len(monday & shared) <= 30
    _, other = sampled(workdir, "monday.jsonl", "--sample-rate", "0.5", "--seed", "4")
    assert other != monday


def test_the_manifest_holds_the_sample(workdir: Path) -> None:
    data, picked = sampled(workdir, "monday.jsonl", "--sample", "12", "--stratify-by", "day")
    manifest = Store(workdir / "audit.duckdb").run(data["run_id"])["manifest"]
    sample = manifest["sample"]
    assert (sample["n"], sample["N"], sample["seed"]) == (12, 45, 0)
    assert sample["stratify_by"] == "day" and sample["rate"] == pytest.approx(12 / 45)
    assert sum(n for n, _ in sample["strata"].values()) == 12 == len(picked)
    assert sum(size for _, size in sample["strata"].values()) == 45
    assert data["counts"]["replayed"] == 12 and data["counts"]["accepted"] == 45


def test_a_whole_log_run_records_no_sample(workdir: Path) -> None:
    data, picked = sampled(workdir, "monday.jsonl")
    assert "sample" not in Store(workdir / "audit.duckdb").run(data["run_id"])["manifest"]
    assert "sample" not in data
    assert picked == ids(LINES[:45])


def test_both_sample_sizes_at_once_is_an_error(workdir: Path) -> None:
    done = auditor("run", "--sample", "5", "--sample-rate", "0.1", cwd=workdir)
    assert done.returncode == 2 and "exclude each other" in done.stderr
    done = auditor("run", "--sample-rate", "1.5", cwd=workdir)
    assert done.returncode == 2 and "sample_rate" in done.stderr
