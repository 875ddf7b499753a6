"""The results store's size per 100k queries, by ``store_depth``, and after ``auditor prune``.

    .venv/bin/python bench/storage.py [--queries 100000] [--depths 100,20] [--out bench/results]

The synthetic log of bench/scale.py (the SciFact fixture's 50 records repeated under new
query ids, served lists and judgments kept, answers dropped), audited by ``auditor run``
(embedded backend, bm25, hash encoder, trace and ablations off, depth 100) into a fresh store
per ``store_depth``. For each: the DuckDB file's size and its rows per table. Then
``auditor prune --keep-hits-days 0`` on the first store (every finished run's hits dropped)
and the file's size after it. Results: ``<out>/storage.json``; the README's "Storage at
scale" quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import build_index  # noqa: E402 (sibling scripts, not a package)
from scale import write_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("query_results", "hits", "metrics", "judgments", "diagnoses", "corpus_coverage")


def auditor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AUDITOR_ES_URL", None)
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def rows(store: Path) -> dict[str, int]:
    with duckdb.connect(str(store), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def one_store(directory: Path, queries: int, store_depth: int) -> dict[str, Any]:
    config = write_config(directory / f"depth{store_depth}", directory / "index", queries)
    with config.open("a") as handle:
        handle.write(f"store_depth = {store_depth}\n")
    done = auditor("run", "--json", "--config", str(config), cwd=config.parent)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"auditor run failed: {done.stderr[-2000:]}")
    store = config.parent / "audit.duckdb"
    size = store.stat().st_size
    return {"store_depth": store_depth, "queries": queries, "store": str(store),
            "file_mb": round(size / 1e6, 1),
            "mb_per_100k_queries": round(size / 1e6 * 100_000 / queries, 1), "rows": rows(store)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--depths", default="100,20", help="store_depth values (first: pruned)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        directory = Path(tmp)
        build_index(directory)
        results = []
        for depth in depths:
            results.append(one_store(directory, args.queries, depth))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "store"}), flush=True)
        first = Path(results[0]["store"])
        pruned = auditor("prune", "--keep-hits-days", "0", "--store", str(first),
                         cwd=first.parent)
        if pruned.returncode:
            raise RuntimeError(f"auditor prune failed: {pruned.stderr}")
        after = first.stat().st_size
        prune = {"store_depth": depths[0], "printed": pruned.stdout.strip().splitlines()[-1],
                 "file_mb_after_prune": round(after / 1e6, 1), "rows": rows(first)}
        print(json.dumps(prune), flush=True)
    for result in results:
        result.pop("store")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storage.json").write_text(json.dumps(
        {"runs": results, "prune": prune}, indent=2) + "\n")


if __name__ == "__main__":
    main()
