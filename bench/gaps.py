"""Knowledge gaps on a planted hole: remove one topic's documents, is that topic found?

    .venv/bin/python bench/gaps.py [--dataset hotpotqa] [--seed 0] [--out bench/results]

From the fixture's corpus the bench removes every paragraph of one entity type (the type,
among ``TYPES``, that the most queries depend on, with at least ``MIN_QUERIES``: a query
depends on a type when one of its judged-relevant paragraphs is of that type, read from the
paragraph's first sentence). The fixture is audited on what is left (embedded index,
MiniLM, hybrid, answers traced, ablations on) and the stored knowledge gaps are read.

Target (issue 15): the topic holding most of the dependent queries ranks first by failure
share × queries, and its corpus density is below its share of the queries. Also reported:
how many of the dependent queries that topic holds, and its terms. ``--type`` removes another
type. Results: ``<out>/gaps-<type>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from beir import open_index  # noqa: E402  (bench/beir.py: the shared index cache)
from planted import chunks_of, load_fixture  # noqa: E402

from auditor.audit import run_audit  # noqa: E402
from auditor.config import AuditSettings  # noqa: E402
from auditor.embed import load_encoder  # noqa: E402
from auditor.store import Store  # noqa: E402

MIN_QUERIES = 8
TYPES = {  # entity type -> words that say so in a paragraph's first sentence
    "film": r"\b(film|movie|documentary)\b",
    "music": r"\b(band|album|song|singer|rapper|musician|record label)\b",
    "sport": r"\b(football|soccer|basketball|baseball|hockey|tennis|athlete|player)\b",
    "place": r"\b(city|town|village|county|municipality|river|island)\b",
    "company": r"\b(company|corporation|brand|retailer|manufacturer)\b",
    "politics": r"\b(politician|senator|governor|president|minister|party)\b",
    "education": r"\b(university|college|school)\b",
}


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


def plan(docs: list[dict[str, str]], relevant: dict[str, list[str]], only: str | None = None
         ) -> tuple[str, set[str], set[str]]:
    """(entity type, its paragraph ids, the queries depending on them)."""
    best: tuple[str, set[str], set[str]] | None = None
    for name, pattern in TYPES.items():
        if only and name != only:
            continue
        found = re.compile(pattern, re.IGNORECASE)
        ids = {d["_id"] for d in docs if found.search(first_sentence(d.get("text") or ""))}
        queries = {q for q, rel in relevant.items() if ids & set(rel)}
        if len(queries) >= MIN_QUERIES and (best is None or len(queries) > len(best[2])):
            best = (name, ids, queries)
    if best is None:
        raise SystemExit(f"no entity type has {MIN_QUERIES} dependent queries")
    return best


def audit(folder: Path, docs: list[dict[str, str]], removed: set[str], work: Path,
          index_root: Path, seed: int) -> tuple[str, Store, float]:
    encoder = load_encoder("minilm")
    kept = [d for d in docs if d["_id"] not in removed]
    index, _ = open_index(chunks_of(kept), index_root / f"gaps-{folder.name}-{len(kept)}",
                          "english", encoder)
    settings = AuditSettings(
        log=folder / "log.jsonl", qrels=folder / "qrels.tsv", store=work / "gaps.duckdb",
        backend="embedded", mode="hybrid", level="doc", ablations=True, trace=True,
        self_probe=False, index=index.directory, encoder="minilm", seed=seed)
    began = time.process_time()
    run_id, status = run_audit(settings, backend=index)
    if status != "complete":
        raise SystemExit(f"the audit ended {status}")
    return run_id, Store(settings.store), time.process_time() - began


def score(store: Store, run_id: str, dependent: set[str]) -> dict[str, Any]:
    topics = store.gaps(run_id)
    members: Counter[int] = Counter()
    for topic in topics:
        listed = {q["query_id"] for q in store.gap_queries(run_id, topic["cluster"])}
        members[topic["cluster"]] = len(listed & dependent)
    home, held = members.most_common(1)[0]
    rank = next(i for i, t in enumerate(topics, start=1) if t["cluster"] == home)
    topic = topics[rank - 1]
    return {
        "topics": len(topics), "dependent_queries": len(dependent), "home_topic": home,
        "home_holds": held, "home_rank": rank, "home_terms": topic["terms"],
        "home_queries": topic["queries"], "home_failure_share": topic["failure_share"],
        "home_query_share": topic["query_share"], "home_density": topic["corpus_density"],
        "ranks_first": rank == 1,
        "density_below_share": (topic["corpus_density"] is not None
                                and topic["corpus_density"] < topic["query_share"]),
        "table": [{k: t[k] for k in ("cluster", "label", "queries", "failure_share",
                                     "query_share", "corpus_density", "gap_score")}
                  for t in topics],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="hotpotqa", choices=["hotpotqa", "scifact"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--type", choices=list(TYPES),
                        help="remove this entity type (default: the one most queries need)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    folder = REPO / "fixtures" / args.dataset
    docs, _, relevant = load_fixture(folder)
    kind, removed, dependent = plan(docs, relevant, args.type)
    print(f"removing {len(removed)} '{kind}' paragraphs of {len(docs)}; "
          f"{len(dependent)} queries depend on them", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_id, store, cpu = audit(folder, docs, removed, Path(tmp), args.out / "index",
                                   args.seed)
        result = {"dataset": args.dataset, "entity_type": kind, "removed": len(removed),
                  "cpu_s": round(cpu, 1), **score(store, run_id, dependent)}
    for row in result["table"]:
        density = row["corpus_density"]
        print(f"  #{row['cluster']:<3} {row['label'][:40]:<40} {row['queries']:>4} q "
              f"failing {row['failure_share']:>4.0%}  share {row['query_share']:>4.0%}  "
              f"density {'—' if density is None else f'{density:.1%}'}")
    print(f"the topic holding most dependent queries (#{result['home_topic']}, "
          f"{result['home_holds']} of {result['dependent_queries']}) ranks "
          f"{result['home_rank']} (target 1: {'met' if result['ranks_first'] else 'NOT met'}); "
          f"density {result['home_density']:.1%} vs share of queries "
          f"{result['home_query_share']:.1%} (target below: "
          f"{'met' if result['density_below_share'] else 'NOT met'})")
    (args.out / f"gaps-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0  # a measurement: `make bench` goes on to the next one either way


if __name__ == "__main__":
    raise SystemExit(main())
