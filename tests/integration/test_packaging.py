"""Packaging promises: light imports, reproducible fixtures, the demo config."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT


def test_import_auditor_stays_light() -> None:
    code = (
        "import sys, auditor, auditor.cli, auditor.audit, auditor.metrics, auditor.store; "
        "heavy = [m for m in ('torch', 'elasticsearch', 'sentence_transformers', 'streamlit') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# Examples written by hand rather than sliced from ../shared/data (see fixtures/README.md).
HANDWRITTEN = {"openinference_spans.json", "otel_genai_spans.json"}


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
        assert all(r.answer and r.served is not None and r.cited for r in records)


def test_the_build_warns_about_nothing(tmp_path: Path) -> None:
    """`make demo` once printed ~60 lines of setuptools deprecations (a license table)."""
    source = tmp_path / "source"  # a copy: building in place leaves build/ in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("auditor", "dashboards"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "deprecat" not in (done.stdout + done.stderr).lower()
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith("METADATA"))
        assert "License-Expression: Apache-2.0" in archive.read(metadata).decode()


def _make(*args: str, tmp_path: Path) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("no make here")
    done = subprocess.run(["make", "-n", "-C", str(ROOT), *args, f"VENV={tmp_path / 'venv'}"],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_install_says_what_it_costs_and_offers_cpu_torch(tmp_path: Path) -> None:
    """Default: PyPI only (works where PyTorch's index is unreachable); TORCH_INDEX opts in."""
    lines = _make("demo", tmp_path=tmp_path)
    pip = [i for i, line in enumerate(lines) if "pip install" in line]
    said = " ".join(line for line in lines[: pip[0]] if line.startswith("echo"))
    assert "several minutes" in said and "6.9 GB" in said and "TORCH_INDEX=" in said
    assert not any("download.pytorch.org" in lines[i] for i in pip)
    cpu = "https://download.pytorch.org/whl/cpu"
    lines = _make("install", f"TORCH_INDEX={cpu}", tmp_path=tmp_path)
    torch = [line for line in lines if "pip install" in line and "torch" in line]
    assert torch and torch[0].endswith(f"torch --index-url {cpu}")
    assert lines.index(torch[0]) < next(i for i, line in enumerate(lines) if "-e '.[test]'" in line)
    assert f"ARG TORCH_INDEX={cpu}" in (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"make demo TORCH_INDEX={cpu}" in readme and "6.9 GB" in readme
