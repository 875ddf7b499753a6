"""The registry against the real thing: every metric a fixture run stores is known, and a
gate on a misspelt metric in audit.toml stops the real CLI at config load (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from auditor.metrics.registry import FAMILIES, family_of, format_metric, parse_metric
from tests.conftest import FIXTURES


def test_every_metric_a_fixture_run_stores_is_known(nightly_store) -> None:
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        stored = [row[0] for row in con.sql("SELECT DISTINCT metric FROM metrics").fetchall()]
    assert stored
    for name in stored:
        assert format_metric(parse_metric(name)) == name
    assert {family_of(name).name for name in stored} <= set(FAMILIES)  # type: ignore[union-attr]


def test_a_misspelt_gate_metric_fails_at_config_load_with_exit_2(tmp_path: Path) -> None:
    scifact = FIXTURES / "scifact"
    (tmp_path / "audit.toml").write_text(
        f'log = "{scifact / "log.jsonl"}"\nqrels = "{scifact / "qrels.tsv"}"\n'
        '\n[[gates]]\nmetric = "recal@10"\nmin = 0.5\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")}
    done = subprocess.run([sys.executable, "-m", "auditor.cli", "run"], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == [
        "error: config audit.toml: gates.0.metric: unknown metric 'recal@10': did you mean "
        "'recall@10'?"]
    assert not (tmp_path / ".auditor").exists()  # nothing ran
