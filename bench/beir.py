"""Our numbers on BEIR next to the published ones: SciFact and NFCorpus test splits.

    .venv/bin/python bench/beir.py [--data ../shared/data] [--datasets scifact,nfcorpus]
                                   [--modes bm25,dense] [--out bench/results]

For each dataset the whole corpus is indexed with the embedded backend (one chunk per
document), the test queries (those in ``qrels/test.tsv``) are replayed with
``search_many`` in batches of 128 at depth 100 and evaluated at document level with
``auditor.metrics.evaluate``. BM25 runs twice, with the English Snowball stemmer and with
no stemming, so the stemming effect is visible; dense runs all-MiniLM-L6-v2.

Indices are cached under ``<out>/index/<dataset>-<stemmer>`` and reused while the
manifest's content hash (and, for dense, the model id) matches: embedding 5k abstracts
takes minutes on a 2-core CPU. Every run is cross-checked against pytrec_eval, fed scores
derived from our rank (``depth - rank + 1``) so its tie-breaking cannot reorder a ranking.
Results go to ``<out>/beir.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from auditor.backends.embedded import EmbeddedBackend, content_hash  # noqa: E402
from auditor.corpus_reader import read_corpus  # noqa: E402
from auditor.judgments import read_qrels  # noqa: E402
from auditor.logs import read_log  # noqa: E402
from auditor.metrics import Qrels, evaluate, means, parse_metric  # noqa: E402
from auditor.records import Chunk, LogRecord, Qrel  # noqa: E402

DEPTH = 100
BATCH = 128
METRICS = ("ndcg@10", "recall@100")
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Published test-split numbers (see ../shared/data/README.md for where each comes from).
REFERENCE: dict[tuple[str, str], dict[str, Any]] = {
    ("scifact", "bm25"): {
        "source": "BEIR paper, BM25 (Elasticsearch)",
        "ndcg@10": 0.665,
        "recall@100": 0.908,
        "recall@100_verified": False,
    },
    ("nfcorpus", "bm25"): {
        "source": "BEIR paper, BM25 (Elasticsearch)",
        "ndcg@10": 0.325,
        "recall@100": 0.250,
        "recall@100_verified": False,
    },
    ("scifact", "dense"): {
        "source": "MTEB, all-MiniLM-L6-v2",
        "ndcg@10": 0.64508,
        "recall@100": 0.92500,
        "recall@100_verified": True,
    },
    ("nfcorpus", "dense"): {
        "source": "MTEB, all-MiniLM-L6-v2",
        "ndcg@10": 0.31594,
        "recall@100": 0.31151,
        "recall@100_verified": True,
    },
}


class BenchError(Exception):
    """The benchmark cannot run; the message says what to do."""


@dataclass(frozen=True)
class Variant:
    """One replay: a search mode against an index built with one stemmer."""

    mode: str
    stemmer: str
    label: str


VARIANTS = (
    Variant("bm25", "english", "bm25 (english stemmer)"),
    Variant("bm25", "none", "bm25 (no stemming)"),
    Variant("dense", "english", "dense (all-MiniLM-L6-v2)"),
)


# inputs -----------------------------------------------------------------------------------
def load_split(folder: Path) -> tuple[list[LogRecord], list[Qrel]]:
    """Test queries (those with a line in qrels/test.tsv, in queries.jsonl order) and qrels."""
    qrels_path = folder / "qrels" / "test.tsv"
    if not qrels_path.is_file():
        raise BenchError(f"{qrels_path} is missing: {folder} is not a BEIR dataset folder")
    qrels, bad = [], []
    for item in read_qrels(qrels_path):
        (qrels if isinstance(item, Qrel) else bad).append(item)
    if bad:
        raise BenchError(f"{qrels_path}: {len(bad)} unreadable lines, first: {bad[0]}")
    wanted = {q.query_id for q in qrels}
    records = [r for r in read_log(folder) if isinstance(r, LogRecord) and r.query_id in wanted]
    missing = wanted - {r.query_id for r in records}
    if missing:
        raise BenchError(f"{len(missing)} judged queries are not in {folder}/queries.jsonl")
    return records, qrels


def open_index(
    chunks: list[Chunk], directory: Path, stemmer: str, encoder: Any | None
) -> tuple[EmbeddedBackend, dict[str, Any]]:
    """The cached index when its content hash (and model) match, else a fresh build."""
    wanted_hash = content_hash(chunks)
    manifest_path = directory / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        same = (
            manifest.get("content_hash") == wanted_hash
            and manifest.get("bm25", {}).get("stemmer") == stemmer
            and (
                encoder is None
                or (
                    manifest.get("model_id") == encoder.model_id
                    and (directory / "embeddings.npy").is_file()
                )
            )
        )
        if same:
            return EmbeddedBackend.open(directory, encoder), {"reused": True, "seconds": 0.0}
    print(
        f"  building {directory.name} ({len(chunks):,} docs"
        f"{', embedding with ' + encoder.model_id if encoder else ''}) ...",
        flush=True,
    )
    start = time.perf_counter()
    index = EmbeddedBackend.build(chunks, directory, encoder, stemmer=stemmer)  # type: ignore[arg-type]
    return index, {"reused": False, "seconds": round(time.perf_counter() - start, 2)}


# one replay -------------------------------------------------------------------------------
def replay(index: EmbeddedBackend, records: list[LogRecord], mode: str) -> dict[str, Any]:
    """Search every query in batches of 128; hit columns in (query, rank) order."""
    index.search_many([records[0].query], mode, DEPTH)  # load the index / warm the model
    hit_query: list[str] = []
    hit_doc: list[str] = []
    empty = errors = 0
    seconds = 0.0
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        began = time.perf_counter()
        results = index.search_many([r.query for r in batch], mode, DEPTH)  # type: ignore[arg-type]
        seconds += time.perf_counter() - began
        for record, result in zip(batch, results, strict=True):
            errors += result.error is not None
            empty += not result.hits
            for hit in result.hits:
                hit_query.append(record.query_id)
                hit_doc.append(hit.doc_id)
    return {
        "hit_query": hit_query,
        "hit_doc": hit_doc,
        "seconds": seconds,
        "empty": empty,
        "errors": errors,
    }


def pytrec_check(
    query_ids: list[str],
    hit_query: list[str],
    hit_doc: list[str],
    qrels: list[Qrel],
    ours: dict[str, np.ndarray],
) -> dict[str, Any]:
    """pytrec_eval on the same ranking (first occurrence per doc, score = depth - rank + 1)."""
    import pytrec_eval

    judgments: dict[str, dict[str, int]] = {}
    for qrel in qrels:
        judgments.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.grade
    run: dict[str, dict[str, float]] = {}
    for query_id, doc_id in zip(hit_query, hit_doc, strict=True):
        ranking = run.setdefault(query_id, {})
        if doc_id not in ranking:
            ranking[doc_id] = float(DEPTH - len(ranking))
    names = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100"}
    results = pytrec_eval.RelevanceEvaluator(judgments, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    diffs = {}
    for ours_name, theirs_name in names.items():
        column = ours[ours_name]
        defined = ~np.isnan(column)
        # pytrec_eval leaves out queries without hits: their value is 0
        theirs = np.array([results.get(q, {}).get(theirs_name, 0.0) for q in query_ids])
        diffs[ours_name] = float(np.max(np.abs(column[defined] - theirs[defined]), initial=0.0))
    return {"max_abs_diff": max(diffs.values()), "per_metric": diffs}


def run_dataset(
    name: str, folder: Path, variants: list[Variant], index_root: Path
) -> list[dict[str, Any]]:
    records, qrels = load_split(folder)
    query_ids = [r.query_id for r in records]
    chunks = list(read_corpus(folder))
    table = Qrels.from_rows([(q.query_id, q.doc_id, q.grade) for q in qrels])
    encoder = None
    if any(v.mode == "dense" for v in variants):
        from auditor.embed import load_encoder

        encoder = load_encoder("minilm")
    rows = []
    indices: dict[str, tuple[EmbeddedBackend, dict[str, Any]]] = {}
    for variant in variants:
        if variant.stemmer not in indices:
            # embeddings live in the english index only: the no-stemming index is BM25 only
            needs = encoder if variant.stemmer == "english" else None
            indices[variant.stemmer] = open_index(
                chunks, index_root / f"{name}-{variant.stemmer}", variant.stemmer, needs
            )
        index, build = indices[variant.stemmer]
        run = replay(index, records, variant.mode)
        values = evaluate(
            query_ids,
            run["hit_query"],
            run["hit_doc"],
            table,
            [parse_metric(m) for m in METRICS],
        )
        averaged = means(values)
        reference = REFERENCE[(name, variant.mode)]
        row: dict[str, Any] = {
            "dataset": name,
            "mode": variant.mode,
            "stemmer": variant.stemmer if variant.mode == "bm25" else None,
            "variant": variant.label,
            "queries": len(query_ids),
            "queries_evaluated": averaged["ndcg@10"].n,
            "empty_results": run["empty"],
            "errors": run["errors"],
            "corpus_docs": len(chunks),
            "index": {"directory": str(index.directory), **build},
            "replay_seconds": round(run["seconds"], 3),
            "queries_per_second": round(len(query_ids) / run["seconds"], 1),
            "reference": reference,
            "pytrec_eval": pytrec_check(query_ids, run["hit_query"], run["hit_doc"], qrels, values),
        }
        for metric in METRICS:
            ours = averaged[metric].value
            row[metric] = ours
            row[f"{metric}_diff"] = None if ours is None else ours - reference[metric]
        rows.append(row)
        print(
            f"  {variant.label:26} nDCG@10 {row['ndcg@10']:.4f}  R@100 "
            f"{row['recall@100']:.4f}  {row['queries_per_second']:,.0f} q/s",
            flush=True,
        )
    return rows


# output ------------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="BEIR test splits: ours vs published (difference = ours - published)")
    for header in (
        "dataset",
        "mode",
        "nDCG@10",
        "published",
        "diff",
        "R@100",
        "published",
        "diff",
        "queries",
        "q/s",
        "vs pytrec_eval",
    ):
        table.add_column(header, justify="left" if header in ("dataset", "mode") else "right")
    for row in rows:
        ref = row["reference"]
        flag = "" if ref["recall@100_verified"] else " †"
        table.add_row(
            row["dataset"],
            row["variant"],
            f"{row['ndcg@10']:.4f}",
            f"{ref['ndcg@10']:g}",
            f"{row['ndcg@10_diff']:+.4f}",
            f"{row['recall@100']:.4f}",
            f"{ref['recall@100']:g}{flag}",
            f"{row['recall@100_diff']:+.4f}{flag}",
            f"{row['queries_evaluated']}/{row['queries']}",
            f"{row['queries_per_second']:,.0f}",
            f"{row['pytrec_eval']['max_abs_diff']:.1e}",
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        "† BM25 recall@100 references are from memory of the BEIR appendix and unverified "
        "(../shared/data/README.md). BEIR's BM25 is Elasticsearch with the english analyzer, "
        "title and text as separate fields; ours is bm25s (lucene k1=1.2, b=0.75) over "
        "title + text with English stopwords."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder holding the BEIR datasets (default {DEFAULT_DATA})",
    )
    parser.add_argument("--datasets", default="scifact,nfcorpus")
    parser.add_argument("--modes", default="bm25,dense")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)

    data = args.data or DEFAULT_DATA
    if not data.is_dir():
        print(
            f"error: no BEIR data at {data}: pass --data with the folder that holds "
            "scifact/ and nfcorpus/ (see ../shared/data/README.md)",
            file=sys.stderr,
        )
        return 2
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [d for d in datasets if (d, "bm25") not in REFERENCE] + [
        m for m in modes if m not in ("bm25", "dense")
    ]
    if unknown:
        parser.error(
            f"unknown dataset or mode {unknown}: datasets scifact, nfcorpus; modes bm25, dense"
        )
    variants = [v for v in VARIANTS if v.mode in modes]

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for name in datasets:
            print(f"{name}:", flush=True)
            rows.extend(run_dataset(name, data / name, variants, args.out / "index"))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(rows)
    result = {
        "setup": {
            "data": str(data.resolve()),
            "depth": DEPTH,
            "batch": BATCH,
            "level": "doc",
            "metrics": list(METRICS),
            "python": platform.python_version(),
            "seconds_total": round(time.perf_counter() - started, 1),
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "beir.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    worst = max(row["pytrec_eval"]["max_abs_diff"] for row in rows)
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
