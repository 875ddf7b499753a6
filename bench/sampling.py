"""Do the sampled 95% intervals cover the full-log mean 93-97% of the time? (issue 12)

A synthetic 200k-query log in three strata of very different retrieval quality (a good, a
middling and a poor segment: 50/30/20% of the queries) with 1-5 judged documents per query;
recall@10 and nDCG@10 per query come from the real metric kernel
(``auditor.metrics.evaluate``), so the full-log means are known exactly. Then ``--draws``
samples of ``--fraction`` each (seeds 0..draws-1, selection by the hash of (seed, query_id),
proportional allocation over the strata) estimate both means with
``auditor.sampling.estimate_mean``; the coverage is the share of draws whose interval holds
the full-log mean. With 200 draws the coverage's own standard error is ~1.5 points.

Then what a sampled run costs: ``auditor run --sample-rate <fraction>`` against the full
``auditor run`` on one synthetic log of ``--cost-queries`` (``bench/sampling_cost.py``;
target <= 5% of the full run's CPU time; ``--cost-queries 0`` skips it).

    .venv/bin/python bench/sampling.py [--queries 200000] [--draws 200] [--fraction 0.02]
                                       [--cost-queries 200000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # sampling_cost.py, a sibling script

from auditor.metrics import Qrels, evaluate  # noqa: E402
from auditor.metrics.registry import parse_metric  # noqa: E402
from auditor.sampling import Design, estimate_mean, id_digests, select, unit_values  # noqa: E402

DEPTH = 10
SHARES = (0.5, 0.3, 0.2)
PLANTED = (0.85, 0.45, 0.08)  # chance that a judged document is in the top 10, per stratum
METRICS = ("recall@10", "ndcg@10")
TARGET = (0.93, 0.97)


def synthesize(n_queries: int, seed: int) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Query ids, stratum labels and per-query metric values of the synthetic log."""
    rng = np.random.default_rng(seed)
    stratum = rng.choice(len(SHARES), size=n_queries, p=SHARES)
    hit_doc = np.arange(n_queries * DEPTH, dtype=np.int64).reshape(n_queries, DEPTH)  # distinct
    judged = rng.integers(1, 6, size=n_queries)
    q = np.repeat(np.arange(n_queries), judged)
    planted = rng.random(q.size) < np.asarray(PLANTED)[stratum[q]]
    rank = rng.integers(0, DEPTH, size=q.size)
    doc = np.where(planted, hit_doc[q, rank], -1 - np.arange(q.size))  # unplanted: not retrieved
    _, first = np.unique(q * (n_queries * DEPTH + q.size + 1) + doc, return_index=True)
    first.sort()
    grade = rng.choice([1, 2], size=first.size, p=[0.6, 0.4])
    numbers = pc.cast(pa.array(np.arange(n_queries)), pa.string())
    queries = pc.binary_join_element_wise("q", numbers, "")
    hit_query = pc.take(queries, pa.array(np.repeat(np.arange(n_queries), DEPTH)))
    qrels = Qrels(pc.take(queries, pa.array(q[first])),
                  pc.cast(pa.array(doc[first]), pa.string()), grade.astype(np.int64))
    values = evaluate(queries.to_pylist(), hit_query,
                      pc.cast(pa.array(hit_doc.ravel()), pa.string()), qrels,
                      [parse_metric(m) for m in METRICS], collapse=False)
    labels = np.array([f"segment-{h}" for h in range(len(SHARES))])[stratum]
    return queries.to_pylist(), labels, values


def coverage(ids: list[str], labels: np.ndarray, values: dict[str, np.ndarray],
             draws: int, fraction: float) -> dict[str, dict[str, float]]:
    digests = id_digests(ids)
    size = round(fraction * len(ids))
    truth = {m: float(np.nanmean(v)) for m, v in values.items()}
    covered = dict.fromkeys(values, 0)
    widths: dict[str, list[float]] = {m: [] for m in values}
    for seed in range(draws):
        sample = select(unit_values(digests, seed), labels,
                        Design(seed=seed, size=size, stratify_by="segment"))
        for name, column in values.items():
            estimate = estimate_mean(column[sample.picked], labels[sample.picked], sample.strata)
            covered[name] += estimate.low <= truth[name] <= estimate.high
            widths[name].append(estimate.half_width)
    return {m: {"full_log_mean": truth[m], "coverage": covered[m] / draws,
                "mean_half_width": float(np.mean(widths[m]))} for m in values}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--cost-queries", type=int, default=200_000,
                        help="queries of the log the sampled run's cost is measured on (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    started = time.process_time()
    ids, labels, values = synthesize(args.queries, seed=12)
    made = time.process_time()
    result = coverage(ids, labels, values, args.draws, args.fraction)
    done = time.process_time()
    for stratum in sorted(set(labels)):
        own = labels == stratum
        recall = np.nanmean(values["recall@10"][own])
        print(f"{stratum}: {own.sum()} queries, recall@10 {recall:.3f}")
    for name, row in result.items():
        ok = TARGET[0] <= row["coverage"] <= TARGET[1]
        print(f"{name}: full-log mean {row['full_log_mean']:.4f}, 95% CI coverage "
              f"{row['coverage']:.3f} over {args.draws} draws of {args.fraction:.0%} "
              f"(target {TARGET[0]:.2f}-{TARGET[1]:.2f}: {'ok' if ok else 'MISSED'}), "
              f"mean half-width {row['mean_half_width']:.4f}")
    print(f"CPU: synthesize + evaluate {made - started:.1f} s, "
          f"{args.draws} draws {done - made:.1f} s")
    met = all(TARGET[0] <= row["coverage"] <= TARGET[1] for row in result.values())
    cost = None
    if args.cost_queries:
        from sampling_cost import measure, show

        cost = measure(args.cost_queries, args.fraction)
        show(cost)
        met = met and cost["met"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sampling.json").write_text(json.dumps(
        {"queries": args.queries, "draws": args.draws, "fraction": args.fraction,
         "target": TARGET, "metrics": result, "cost": cost}, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
