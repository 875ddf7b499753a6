"""Golden outputs: what the auditor prints and stores on the fixtures, volatile fields masked.

The refactors of issue 11 promise the same numbers before and after. This module runs the real
CLI (MiniLM encoder, embedded index) on both fixture slices in both modes and gathers:
`auditor run --json`, `auditor report --format json`, `auditor compare --json`, and every
per-query row the store keeps (metrics, sentences, support, diagnoses, scatter, hits, ...).

Regenerate on purpose only: `python -m tests.golden.capture --write`.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
GOLDEN = Path(__file__).resolve().parent
AUDITOR = Path(sys.executable).parent / "auditor"

SLICES = ("scifact", "hotpotqa")
MODES = ("bm25", "hybrid")  # bm25 first: the hybrid run gates and compares against it
# Fields whose values differ on every run (ids, clocks, paths, versions); masked by key.
VOLATILE_KEYS = {
    "run_id", "baseline_run_id", "started_at", "finished_at", "generated_at", "created_at",
    "store", "path", "directory", "code_version", "config_digest", "applied_at", "owner",
    "verdict_id", "took_ms", "replay_latency_ms", "a", "b", "earlier",
}
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
# Store tables whose rows are per query (or per document) and carry no clock.
TABLES = {
    "query_results": ("query_id",),
    "metrics": ("query_id", "metric"),
    "sentences": ("query_id", "idx"),
    "support": ("query_id", "idx", "origin", "chunk_id"),
    "conflicts": ("query_id", "idx", "origin", "chunk_id"),
    "diagnoses": ("query_id", "cause", "target_id"),
    "scatter": ("query_id", "level"),
    "hits": ("query_id", "rank"),
    "judgments": ("query_id", "doc_id"),
    "corpus_coverage": ("doc_id",),
    "passages": ("chunk_id",),
    "quarantine": ("source", "line"),
}
# Columns copied from the log or corpus (not computed by the auditor) are left out to keep the
# files small; hits are kept to the top 10 per query.
DROP_COLUMNS = {"run_id", "seq", "replay_latency_ms", "took_ms", "text", "title", "query",
                "answer", "cited", "metadata", "served", "raw"}
WHERE = {"hits": " AND rank <= 10"}


def mask(value: Any, key: str = "") -> Any:
    """Volatile fields become "<masked>"; floats are rounded so the last ulp does not matter."""
    if key in VOLATILE_KEYS and value is not None:
        return "<masked>"
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if isinstance(value, float):
        return value if not math.isfinite(value) else round(value, 6)
    if isinstance(value, str):
        return _mask_json_text(RUN_ID.sub("<run>", value))
    return value


def _mask_json_text(text: str) -> str:
    """Evidence is stored as JSON text: round the floats inside it too.

    Vectors embedded in a different batch differ in the last float32 bits (padding changes the
    matrix shapes), so a similarity inside the evidence moves at the 7th digit.
    """
    if not text.startswith("{"):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return json.dumps(mask(parsed))


def _auditor(*args: str, cwd: Path) -> Any:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    done = subprocess.run([str(AUDITOR), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode not in (0, 1):  # 1 = a gate failed, which is an output too
        raise RuntimeError(f"auditor {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return json.loads(done.stdout)


def _rows(store: Path, run_id: str) -> dict[str, list[dict[str, Any]]]:
    with duckdb.connect(str(store), read_only=True) as con:
        tables: dict[str, list[dict[str, Any]]] = {}
        for table, order in TABLES.items():
            cursor = con.execute(f"SELECT * FROM {table} WHERE run_id = ?"  # noqa: S608
                                 f"{WHERE.get(table, '')} ORDER BY {', '.join(order)}", [run_id])
            names = [d[0] for d in cursor.description]
            tables[table] = [
                {k: v for k, v in zip(names, row, strict=True) if k not in DROP_COLUMNS}
                for row in cursor.fetchall()
            ]
    return mask(json.loads(json.dumps(tables, default=str)))


def capture(workdir: Path) -> dict[str, Any]:
    """Everything golden, keyed by file name (one JSON file per slice, mode and output)."""
    out: dict[str, Any] = {}
    for name in SLICES:
        data = FIXTURES / name
        index, store = workdir / f"index-{name}", workdir / f"{name}.duckdb"
        subprocess.run([str(AUDITOR), "index", "build", "--corpus", str(data / "corpus.jsonl"),
                        "--index", str(index), "--encoder", "minilm"], cwd=workdir, check=True,
                       capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        run_ids = []
        for mode in MODES:
            summary = _auditor("run", "--log", str(data / "log.jsonl"), "--qrels",
                               str(data / "qrels.tsv"), "--store", str(store), "--index",
                               str(index), "--mode", mode, "--json", cwd=workdir)
            run_ids.append(summary["run_id"])
            report = _auditor("report", summary["run_id"], "--store", str(store), "-f", "json",
                              cwd=workdir)
            out[f"{name}-{mode}-run"] = mask(summary)
            out[f"{name}-{mode}-report"] = mask(report)
            out[f"{name}-{mode}-rows"] = _rows(store, summary["run_id"])
        out[f"{name}-compare"] = mask(_auditor("compare", *run_ids, "--store", str(store),
                                               "--json", cwd=workdir))
    text = json.dumps(out).replace(str(workdir), "<workdir>").replace(str(ROOT), "<repo>")
    return json.loads(text)


def main() -> None:
    import tempfile

    if "--write" not in sys.argv:
        raise SystemExit("usage: python -m tests.golden.capture --write  (overwrites the files)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, value in capture(Path(tmp)).items():
            (GOLDEN / f"{name}.json").write_text(dumps(value))


def dumps(value: dict[str, Any]) -> str:
    """Row files: one compact row per line (small, and a diff names the row that moved)."""
    if not name_is_rows(value):
        return json.dumps(value, indent=1, sort_keys=True) + "\n"
    parts = []
    for table, rows in sorted(value.items()):
        lines = ",\n".join(json.dumps(row, sort_keys=True, separators=(",", ":")) for row in rows)
        parts.append(f"{json.dumps(table)}: [\n{lines}\n]")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def name_is_rows(value: dict[str, Any]) -> bool:
    return set(value) == set(TABLES)


if __name__ == "__main__":
    main()
