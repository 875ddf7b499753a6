"""Packaging promises: light imports, reproducible fixtures, the demo config."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, ROOT


def test_import_auditor_stays_light() -> None:
    code = (
        "import sys, auditor, auditor.cli, auditor.audit, auditor.metrics, auditor.store; "
        "heavy = [m for m in ('torch', 'elasticsearch', 'sentence_transformers', 'streamlit') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# Examples written by hand rather than sliced from ../shared/data (see fixtures/README.md).
HANDWRITTEN = {"openinference_spans.json"}


@pytest.mark.data
def test_fixtures_rebuild_byte_identical(shared_data: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_fixtures.py"), "--data", str(shared_data),
         "--out", str(tmp_path)],
        check=True, capture_output=True,
    )
    committed = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*.js*")
                       if p.is_file() and p.name not in HANDWRITTEN)
    assert committed, "no fixtures committed"
    for relative in [*committed, Path("scifact/qrels.tsv"), Path("hotpotqa/qrels.tsv")]:
        assert filecmp.cmp(FIXTURES / relative, tmp_path / relative, shallow=False), relative


def test_fixture_logs_carry_answers_and_served_lists() -> None:
    from auditor.logs import LoadCounts, read_log

    for name, expected in (("scifact", 50), ("hotpotqa", 100)):
        counts = LoadCounts()
        records = list(read_log(FIXTURES / name / "log.jsonl", counts))
        assert counts.accepted == expected and counts.quarantined == 0
        assert all(r.answer and r.retrieved is not None and r.cited for r in records)
