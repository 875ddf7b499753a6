"""`auditor run --dry-run [--budget]`: the cost of a run, said before it runs, storing nothing.

A hash-encoder run of the SciFact fixtures (plus the bad log, so quarantine is counted) is
the reference: the dry run's counts must be the ones the real run then stores.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from auditor.dry_run import parse_budget, suggest_sample
from auditor.errors import ConfigError
from tests.conftest import FIXTURES

from .test_audit import auditor, write_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An indexed corpus (its chunk vectors cached in the store) and a log with bad lines."""
    directory = tmp_path_factory.mktemp("dry")
    log = directory / "log.jsonl"
    log.write_text((FIXTURES / "scifact" / "log.jsonl").read_text()
                   + (FIXTURES / "bad_log.jsonl").read_text())
    write_config(directory, log=str(log), mode="hybrid")
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    return directory


def dry(directory: Path, *args: str) -> dict:
    done = auditor("run", "--dry-run", "--json", *args, cwd=directory)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rows(store: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_dry_run_stores_nothing_and_counts_what_the_run_stores(workdir: Path) -> None:
    store = workdir / "audit.duckdb"
    cached = rows(store, "SELECT count(*) FROM embeddings")
    before = dry(workdir)
    assert rows(store, "SELECT count(*) FROM runs") == [(0,)]
    assert rows(store, "SELECT count(*) FROM embeddings") == cached
    # index build cached the passages, windows and self-probes: only queries and sentences left
    assert 0 < before["texts_not_cached"] < before["texts"]
    assert before["calibration"]["queries"] == 20 and before["expected_s"] > 0

    real = auditor("run", "--json", cwd=workdir)
    assert real.returncode == 0, real.stderr
    run_id = json.loads(real.stdout)["run_id"]
    ((counts,),) = rows(store, f"SELECT counts FROM runs WHERE run_id = '{run_id}'")
    counts = json.loads(counts)
    assert counts["embedding_cache"]["encoded"] == before["texts_not_cached"]
    for key in ("read", "accepted", "quarantined", "blank", "skipped"):
        assert before[key] == counts[key], key
    assert before["quarantined"] > 0 and before["accepted"] == counts["replayed"]
    assert rows(store, f"SELECT count(*) FROM sentences WHERE run_id = '{run_id}'") == [
        (before["answer_sentences"],)]
    after = dry(workdir)  # the run cached every query and sentence it embedded
    assert after["texts"] == before["texts"] and after["texts_not_cached"] == 0
    assert rows(store, "SELECT count(*) FROM runs") == [(1,)]


def test_a_dry_run_without_a_store_creates_none(tmp_path: Path) -> None:
    write_config(tmp_path, mode="bm25", store=str(tmp_path / "never.duckdb"))
    assert auditor("index", "build", "--no-vectors", cwd=tmp_path).returncode == 0
    (tmp_path / "never.duckdb").unlink(missing_ok=True)
    text = auditor("run", "--dry-run", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "50 queries" in text.stdout and "nothing stored" in text.stdout
    assert not (tmp_path / "never.duckdb").exists()


def test_budget_suggests_a_sample_that_fits(workdir: Path) -> None:
    wide, narrow = dry(workdir, "--budget", "2h"), dry(workdir, "--budget", "1s")
    assert wide["budget_s"] == 7200 and wide["suggested_sample"] == wide["accepted"]
    assert 0 <= narrow["suggested_sample"] <= narrow["accepted"]
    cal = narrow["calibration"]
    overhead = narrow["read_s"] + cal["setup_s"]
    assert narrow["suggested_sample"] == suggest_sample(1.0, overhead, cal["per_query_s"],
                                                        narrow["accepted"])
    sizes = [suggest_sample(b, overhead, cal["per_query_s"], narrow["accepted"])
             for b in (3600.0, 2.0, 1.0, 0.5, 0.1)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == narrow["accepted"]
    assert suggest_sample(10.0, 2.0, 0.5, 1000) == 16 < suggest_sample(20.0, 2.0, 0.5, 1000)
    assert suggest_sample(1.0, 2.0, 0.5, 1000) == 0


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1h30m", 5400),
                                               ("45s", 45), (" 2H ", 7200)])
def test_budget_forms(text: str, seconds: int) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("args", [("--dry-run", "--budget", "2 hours"),
                                  ("--dry-run", "--budget", "0m"),
                                  ("--dry-run", "--budget", "90"),
                                  ("--budget", "2h")])
def test_a_bad_budget_is_one_sentence_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    write_config(tmp_path)
    done = auditor("run", *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--budget" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "audit.duckdb").exists()
    with pytest.raises(ConfigError, match="90m, 2h or 1h30m"):
        parse_budget("soon")


def test_a_sampled_dry_run_counts_and_times_the_sample(workdir: Path) -> None:
    """`--dry-run --sample N` draws the run's own sample: its queries, sentences and texts
    (fewer than the whole log's), and says "sampled: n of N" in JSON and in text."""
    store = workdir / "audit.duckdb"
    runs = rows(store, "SELECT count(*) FROM runs")
    whole = dry(workdir)
    part = dry(workdir, "--sample", "10", "--stratify-by", "day", "--seed", "3")
    assert whole["sampled"] is None and whole["queries"] == whole["accepted"]
    # N counts two lines more: bad_log.jsonl's two with an id and a query but a bad field
    # elsewhere (retrieved, latency), which a sampled read checks in full only if it picks them
    population = whole["accepted"] + 2
    assert part["sampled"] == f"sampled: 10 of {population}" and part["read"] == whole["read"]
    assert part["accepted"] + part["quarantined"] == whole["accepted"] + whole["quarantined"]
    picked_bad = part["quarantined"] - (whole["quarantined"] - 2)  # quarantined when picked
    assert picked_bad in (0, 1, 2) and part["queries"] == 10 - picked_bad
    assert part["texts"] < whole["texts"] and part["calibration"]["queries"] == part["queries"]
    assert part["answer_sentences"] < whole["answer_sentences"]
    rate = dry(workdir, "--sample-rate", "0.2")
    assert rate["sampled"].startswith("sampled: ") and rate["queries"] < whole["accepted"]
    text = auditor("run", "--dry-run", "--sample", "10", cwd=workdir)
    assert text.returncode == 0, text.stderr
    assert f"sampled: 10 of {population} queries" in text.stdout
    assert rows(store, "SELECT count(*) FROM runs") == runs  # still nothing stored

    real = auditor("run", "--json", "--sample", "10", "--stratify-by", "day", "--seed", "3",
                   "--baseline", "none", cwd=workdir)
    assert real.returncode == 0, real.stderr
    summary = json.loads(real.stdout)
    assert summary["sample"]["sampled"] == part["sampled"]
    run_id = summary["run_id"]
    assert rows(store, f"SELECT count(*) FROM sentences WHERE run_id = '{run_id}'") == [
        (part["answer_sentences"],)]
