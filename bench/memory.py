"""Peak memory of `auditor run` against the number of queries: it must stay flat.

    .venv/bin/python bench/memory.py [--sizes 10000,100000] [--out bench/results]

Each size is a synthetic log made from the SciFact fixture (its 50 records repeated under
new query ids, with their served lists and judgments; answers dropped so no answer is
traced), audited with the embedded backend (bm25, hash encoder, ablations on, depth 100) in
a child process. Peak RSS is the child's ``ru_maxrss`` (``os.wait4``): what the kernel saw,
including DuckDB's native memory. The issue's target: the largest size within 1.3x of the
smallest. Results: ``<out>/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT / "fixtures" / "scifact"


def synthetic_log(directory: Path, queries: int) -> tuple[Path, Path]:
    """``queries`` records cycled from the fixture log under new ids, and their qrels."""
    records = [json.loads(line) for line in (SCIFACT / "log.jsonl").read_text().splitlines()]
    qrels = [row.split("\t") for row in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]]
    by_query: dict[str, list[list[str]]] = {}
    for row in qrels:
        by_query.setdefault(row[0], []).append(row)
    log, judged = directory / "log.jsonl", directory / "qrels.tsv"
    with log.open("w") as out, judged.open("w") as qout:
        qout.write("query-id\tcorpus-id\tscore\n")
        for i in range(queries):
            record = dict(records[i % len(records)])
            record.pop("answer", None)
            record.pop("cited", None)
            query_id = f"{record['query_id']}-{i // len(records)}"
            record["query_id"] = query_id
            out.write(json.dumps(record) + "\n")
            for row in by_query.get(records[i % len(records)]["query_id"], []):
                qout.write("\t".join([query_id, *row[1:]]) + "\n")
    return log, judged


def build_index(directory: Path, corpus: Path = SCIFACT / "corpus.jsonl",
                es_index: str | None = None) -> None:
    """``corpus`` (default the fixture's) by ``auditor index build`` (hash encoder): an
    embedded index in ``directory / "index"``, or with ``es_index`` that Elasticsearch index
    at ``AUDITOR_ES_URL`` (BM25 only)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    where = ["--index", str(directory / "index")]
    if es_index is not None:
        env["AUDITOR_ES_INDEX"] = es_index
        where = ["--backend", "elasticsearch", "--no-vectors"]
    subprocess.run([sys.executable, "-m", "auditor.cli", "index", "build", "--corpus",
                    str(corpus.resolve()), *where, "--encoder", "hash"], check=True, env=env,
                   cwd=directory, capture_output=True)


def measure(directory: Path, queries: int) -> dict[str, float | int]:
    """Peak RSS (MB) and wall time of one `auditor run` over a log of ``queries``."""
    work = directory / f"n{queries}"
    work.mkdir()
    log, qrels = synthetic_log(work, queries)
    config = work / "audit.toml"
    config.write_text("\n".join([
        f'log = "{log}"', f'qrels = "{qrels}"', f'store = "{work / "audit.duckdb"}"',
        f'index = "{directory / "index"}"', 'encoder = "hash"', 'mode = "bm25"',
        'baseline = "none"', f'reports = "{work / "reports"}"', "batch_size = 256",
    ]) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AUDITOR_ES_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "auditor.cli", "run", "--json",
                              "--config", str(config)], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = child.stdout.read() if child.stdout else b""
    stderr = child.stderr.read() if child.stderr else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"auditor run failed: {stderr.decode()[-2000:]}")
    summary = json.loads(stdout)
    assert summary["counts"]["replayed"] == queries, summary["counts"]
    return {"queries": queries, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "seconds": round(seconds, 1),
            "store_mb": round((work / "audit.duckdb").stat().st_size / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        build_index(directory)
        results = []
        for size in sizes:
            results.append(measure(directory, size))
            print(json.dumps(results[-1]), flush=True)
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    report = {"results": results, "ratio": round(ratio, 3), "target": 1.3}
    print(json.dumps({"ratio": report["ratio"]}))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
