"""A store written by the oldest schema opens with every read path (upgraded on first
open); a store stamped by a newer auditor is refused with one sentence and exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from auditor.store import MIGRATIONS, Store, StoreError

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
                                  "compare"])
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
