"""How fast is ``auditor.metrics.evaluate`` next to pytrec_eval and ranx, and do they agree?

A synthetic run (fixed seed) of 100k queries x 100 hits: string doc ids from a 1M-document
space, a few judged documents per query with grades 0-2 (half of them planted in the
run, nearer the top more often), 10% of queries without judgments. Every tool computes
recall, precision, nDCG, MRR and hit (success) at 1, 5, 10 and 100.

    .venv/bin/python bench/metrics_speed.py [--queries 100000] [--out bench/results]

Timing: median of ``--repeats`` (3) runs for ours and pytrec_eval in this process on the
same inputs; building pytrec_eval's dict inputs and its evaluator are timed apart from
``evaluate``. ranx is timed end to end (``Qrels``/``Run`` from dicts + ``evaluate``) twice:
the first call includes numba's JIT compilation (or loading it from numba's cache).

Memory: each tool runs once more in a child process (``--only ours|pytrec|ranx``) that
builds its inputs, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs
the evaluation and reports ``ru_maxrss`` minus the RSS it started from: the peak extra
memory of the evaluation alone (the larger of two probes for ours and pytrec_eval, as the
allocator's timing moves it by up to ~30%). The children run before this process grows,
so their ``ru_maxrss`` never inherits ours.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from auditor.metrics import Qrels, evaluate, metrics_for  # noqa: E402

KS = (1, 5, 10, 100)
MEASURES = ("recall", "precision", "ndcg", "mrr", "hit")
TOOLS = ("ours", "pytrec", "ranx")
PYTREC_NAMES = {"recall": "recall", "precision": "P", "ndcg": "ndcg_cut", "hit": "success"}
RANX_NAMES = {
    "recall": "recall",
    "precision": "precision",
    "ndcg": "ndcg",
    "mrr": "mrr",
    "hit": "hit_rate",
}
TOLERANCE = 1e-9


# the synthetic run ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Synthetic:
    """Integer codes; ``hit_doc`` is (queries, depth) in rank order, distinct per row."""

    hit_doc: np.ndarray
    qrel_query: np.ndarray
    qrel_doc: np.ndarray
    qrel_grade: np.ndarray


def synthesize(n_queries: int, depth: int, n_docs: int, seed: int) -> Synthetic:
    rng = np.random.default_rng(seed)
    hit_doc = rng.integers(0, n_docs, size=(n_queries, depth))
    while True:  # a ranking names each document once: redraw the rare rows with a repeat
        ordered = np.sort(hit_doc, axis=1)
        repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if not len(repeated):
            break
        hit_doc[repeated] = rng.integers(0, n_docs, size=(len(repeated), depth))
    judged = np.where(rng.random(n_queries) < 0.10, 0, rng.integers(1, 6, size=n_queries))
    q = np.repeat(np.arange(n_queries), judged)
    planted = rng.random(len(q)) < 0.5
    rank = np.minimum(rng.exponential(15.0, size=len(q)).astype(np.int64), depth - 1)
    doc = np.where(planted, hit_doc[q, rank], rng.integers(0, n_docs, size=len(q)))
    grade = rng.choice(3, size=len(q), p=[0.3, 0.5, 0.2])
    _, first = np.unique(q * n_docs + doc, return_index=True)  # one judgment per pair
    first.sort()
    return Synthetic(hit_doc, q[first], doc[first], grade[first])


def _ids(prefix: str, codes: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(codes), pa.string()), "")


@dataclass(frozen=True)
class Columns:
    """The run as string-id columns, grouped by query in rank order (as replay writes it)."""

    query_ids: list[str]
    hit_query_id: pa.Array
    hit_doc_id: pa.Array  # plain strings
    hit_doc_dict: pa.DictionaryArray  # the same ids dictionary-encoded, as DuckDB/Parquet give
    qrels: Qrels
    depth: int


def columns(data: Synthetic, n_docs: int) -> Columns:
    n_queries, depth = data.hit_doc.shape
    queries = _ids("q", np.arange(n_queries))
    return Columns(
        query_ids=queries.to_pylist(),
        hit_query_id=pc.take(queries, pa.array(np.repeat(np.arange(n_queries), depth))),
        hit_doc_id=_ids("d", data.hit_doc.ravel()),
        hit_doc_dict=pa.DictionaryArray.from_arrays(
            pa.array(data.hit_doc.ravel().astype(np.int32)), _ids("d", np.arange(n_docs))
        ),
        qrels=Qrels(
            _ids("q", data.qrel_query), _ids("d", data.qrel_doc), data.qrel_grade.astype(np.int64)
        ),
        depth=depth,
    )


def dict_inputs(cols: Columns) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """pytrec_eval's (and ranx's) input: ``{query: {doc: grade}}``, ``{query: {doc: score}}``.

    Scores are ``depth - rank + 1``: distinct, so no tool can reorder a ranking on ties.
    """
    qrels: dict[str, dict[str, int]] = {}
    for q, d, g in zip(
        cols.qrels.query_id.to_pylist(),
        cols.qrels.doc_id.to_pylist(),
        cols.qrels.grade.tolist(),
        strict=True,
    ):
        qrels.setdefault(q, {})[d] = g
    docs = cols.hit_doc_id.to_pylist()
    scores = [float(s) for s in range(cols.depth, 0, -1)]
    depth = cols.depth
    run = {
        q: dict(zip(docs[i * depth : (i + 1) * depth], scores, strict=True))
        for i, q in enumerate(cols.query_ids)
    }
    return qrels, run


# the three tools ------------------------------------------------------------------------------
def run_ours(cols: Columns, strings: bool = False) -> dict[str, np.ndarray]:
    # A document ranking with distinct ids per query (as replay stores doc-level rankings):
    # nothing to collapse. Ids dictionary-encoded (each distinct id hashed once), the
    # columnar counterpart of pytrec_eval's prebuilt dicts; ``strings`` times plain strings.
    ids = cols.hit_doc_id if strings else cols.hit_doc_dict
    return evaluate(
        cols.query_ids, cols.hit_query_id, ids, cols.qrels, metrics_for(KS, MEASURES),
        collapse=False,
    )


def pytrec_measures() -> set[str]:
    cut = ",".join(str(k) for k in KS)
    return {f"{name}.{cut}" for name in PYTREC_NAMES.values()} | {"recip_rank"}


def pytrec_evaluator(qrels: dict[str, dict[str, int]]) -> Any:
    import pytrec_eval

    return pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures())


def run_ranx(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> Any:
    """End to end: typed ``Qrels``/``Run`` from dicts, then ``evaluate``; returns the Run."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    ranx_qrels = RanxQrels.from_dict(qrels)
    ranx_run = RanxRun.from_dict(run)
    names = [f"{RANX_NAMES[m]}@{k}" for m in MEASURES for k in KS]
    ranx_evaluate(ranx_qrels, ranx_run, names, return_mean=False)
    return ranx_run


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def _median_of(repeats: int, call: Callable[[], Any]) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(repeats):
        gc.collect()
        elapsed, result = _timed(call)
        seconds.append(elapsed)
    return seconds, result


# agreement --------------------------------------------------------------------------------
def _agreement(
    ours: dict[str, np.ndarray],
    query_ids: list[str],
    theirs: dict[str, dict[str, float]],
    compare: np.ndarray,
) -> dict[str, float]:
    """Max |ours - theirs| per metric over the queries in ``compare`` (bool mask)."""
    position = {q: i for i, q in enumerate(query_ids)}
    out = {}
    for name, column in theirs.items():
        rows = np.array([position[q] for q in column], dtype=np.int64)
        values = np.fromiter(column.values(), dtype=np.float64, count=len(column))
        keep = compare[rows]
        missing = int(compare.sum() - keep.sum())
        if missing:
            raise RuntimeError(f"{name}: {missing} comparable queries have no value")
        out[name] = float(np.max(np.abs(ours[name][rows[keep]] - values[keep]), initial=0.0))
    return out


def _pytrec_columns(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    columns_: dict[str, dict[str, float]] = {}
    for ours_name, name in PYTREC_NAMES.items():
        for k in KS:
            columns_[f"{ours_name}@{k}"] = {q: v[f"{name}_{k}"] for q, v in results.items()}
    # trec_eval's recip_rank has no cutoff: it equals mrr@depth when every query has depth hits
    columns_["mrr@100"] = {q: v["recip_rank"] for q, v in results.items()}
    return columns_


def _ranx_columns(ranx_run: Any) -> dict[str, dict[str, float]]:
    return {
        f"{m}@{k}": {q: float(v) for q, v in ranx_run.scores[f"{RANX_NAMES[m]}@{k}"].items()}
        for m in MEASURES
        for k in KS
    }


# memory in a child process ----------------------------------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reset_peak() -> bool:
    """Lower the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def measure_memory(tool: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run in the child: build ``tool``'s inputs, then the peak extra RSS of its evaluation."""
    cols = columns(synthesize(args.queries, args.depth, args.docs, args.seed), args.docs)
    gc.collect()
    before_inputs = _rss_kib()
    if tool == "ours":

        def call() -> Any:
            return run_ours(cols)
    else:
        qrels, run = dict_inputs(cols)
        if tool == "pytrec":

            def call() -> Any:
                return pytrec_evaluator(qrels).evaluate(run)
        else:
            run = {q: run[q] for q in qrels}

            def call() -> Any:
                return run_ranx(qrels, run)

    gc.collect()
    out: dict[str, Any] = {
        "tool": tool,
        "inputs_mib": round((_rss_kib() - before_inputs) / 1024, 1),
    }
    # ranx twice: the first call also holds numba's compiler; the second is warm
    for label in ("", "_second_call") if tool == "ranx" else ("",):
        gc.collect()
        pa.default_memory_pool().release_unused()  # else the baseline depends on pool history
        was_reset = _reset_peak()
        baseline = _rss_kib() if was_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        elapsed, result = _timed(call)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        del result
        out[f"peak_increase_mib{label}"] = round((peak - baseline) / 1024, 1)
        out[f"peak_rss_mib{label}"] = round(peak / 1024, 1)
        out[f"seconds{label}"] = round(elapsed, 3)
        out["peak_mark_reset"] = was_reset
    return out


def _memory_in_child(tool: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--only",
        tool,
        "--queries",
        str(args.queries),
        "--depth",
        str(args.depth),
        "--docs",
        str(args.docs),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe for {tool} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# the benchmark ----------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> dict[str, Any]:
    memory = {tool: _memory_in_child(tool, args) for tool in TOOLS}  # while we are still small
    for tool in ("ours", "pytrec"):  # allocator timing varies: keep the larger of two probes
        again = _memory_in_child(tool, args)
        if again["peak_increase_mib"] > memory[tool]["peak_increase_mib"]:
            memory[tool] = again
    print("memory probes:", json.dumps(memory), flush=True)

    seconds, data = _timed(lambda: synthesize(args.queries, args.depth, args.docs, args.seed))
    columns_seconds, cols = _timed(lambda: columns(data, args.docs))
    n_hits = len(cols.hit_doc_id)
    print(
        f"synthetic run: {args.queries:,} queries, {n_hits:,} hits, {len(cols.qrels.grade):,} "
        f"judgments ({seconds:.1f}s + {columns_seconds:.1f}s to string columns)",
        flush=True,
    )

    ours_times, ours = _median_of(args.repeats, lambda: run_ours(cols))
    print(f"ours: {[round(t, 3) for t in ours_times]}", flush=True)
    string_times, ours_strings = _median_of(args.repeats, lambda: run_ours(cols, strings=True))
    print(f"ours, plain string ids: {[round(t, 3) for t in string_times]}", flush=True)
    assert all(
        np.array_equal(ours[name], ours_strings[name], equal_nan=True) for name in ours
    ), "dictionary-encoded and plain string ids must give identical values"

    build_seconds, (qrels, run) = _timed(lambda: dict_inputs(cols))
    evaluator_seconds, evaluator = _timed(lambda: pytrec_evaluator(qrels))
    pytrec_times, pytrec_results = _median_of(args.repeats, lambda: evaluator.evaluate(run))
    print(
        f"pytrec_eval: dicts {build_seconds:.2f}s, evaluator {evaluator_seconds:.2f}s, "
        f"evaluate {[round(t, 3) for t in pytrec_times]}",
        flush=True,
    )

    ranx_input = {q: run[q] for q in qrels}  # ranx refuses queries absent from the qrels
    ranx_times = []
    ranx_run = None
    for _ in range(2):
        gc.collect()
        elapsed, ranx_run = _timed(lambda: run_ranx(qrels, ranx_input))
        ranx_times.append(elapsed)
    print(f"ranx end to end: {[round(t, 3) for t in ranx_times]}", flush=True)

    relevant = np.zeros(len(cols.query_ids), dtype=bool)
    position = {q: i for i, q in enumerate(cols.query_ids)}
    for q, docs in qrels.items():
        if any(g >= 1 for g in docs.values()):
            relevant[position[q]] = True
    judged_not_relevant = sum(
        1 for docs in qrels.values() if not any(g >= 1 for g in docs.values())
    )
    nan_ok = all(np.array_equal(np.isnan(column), ~relevant) for column in ours.values())
    vs_pytrec = _agreement(ours, cols.query_ids, _pytrec_columns(pytrec_results), relevant)
    vs_ranx = _agreement(ours, cols.query_ids, _ranx_columns(ranx_run), relevant)

    ours_median = statistics.median(ours_times)
    pytrec_median = statistics.median(pytrec_times)
    return {
        "setup": {
            "queries": args.queries,
            "depth": args.depth,
            "doc_space": args.docs,
            "seed": args.seed,
            "hits": n_hits,
            "judgments": int(len(cols.qrels.grade)),
            "queries_with_relevant": int(relevant.sum()),
            "queries_without_judgments": int(args.queries - len(qrels)),
            "queries_judged_but_none_relevant": judged_not_relevant,
            "metrics": [f"{m}@{k}" for m in MEASURES for k in KS],
            "repeats": args.repeats,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {_cpu_count()} cores",
        },
        "seconds": {
            "ours_evaluate": ours_times,
            "ours_evaluate_median": ours_median,
            "ours_string_ids_evaluate": string_times,
            "ours_string_ids_evaluate_median": statistics.median(string_times),
            "pytrec_build_dicts": build_seconds,
            "pytrec_build_evaluator": evaluator_seconds,
            "pytrec_evaluate": pytrec_times,
            "pytrec_evaluate_median": pytrec_median,
            "ranx_end_to_end": ranx_times,
            "synthesize": seconds,
            "string_columns": columns_seconds,
        },
        "ratios": {
            "pytrec_evaluate_over_ours": pytrec_median / ours_median,
            "pytrec_evaluate_over_ours_string_ids": pytrec_median
            / statistics.median(string_times),
            "pytrec_dicts_evaluator_evaluate_over_ours": (
                build_seconds + evaluator_seconds + pytrec_median
            )
            / ours_median,
            "ranx_first_over_ours": ranx_times[0] / ours_median,
            "ranx_second_over_ours": ranx_times[1] / ours_median,
            "target": 4.0,
            "target_met": pytrec_median / ours_median >= 4.0,
        },
        "memory_mib": memory,
        "agreement": {
            "tolerance": TOLERANCE,
            "max_abs_diff_vs_pytrec": max(vs_pytrec.values()),
            "max_abs_diff_vs_ranx": max(vs_ranx.values()),
            "per_metric_vs_pytrec": vs_pytrec,
            "per_metric_vs_ranx": vs_ranx,
            "ours_nan_exactly_where_no_relevant": nan_ok,
            "note": (
                "compared on queries with at least one relevant judgment; ours is NaN for "
                "the others (pytrec_eval reports 0 for judged-but-none-relevant queries and "
                "nothing for unjudged ones). pytrec_eval has no MRR cutoff: its recip_rank is "
                "compared with mrr@100 (every query has 100 hits); mrr@1/5/10 are checked "
                "against ranx only."
            ),
            "agree": max(max(vs_pytrec.values()), max(vs_ranx.values())) <= TOLERANCE and nan_ok,
        },
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


def print_report(result: dict[str, Any]) -> None:
    s, r, m = result["seconds"], result["ratios"], result["memory_mib"]
    pytrec_total = (
        s["pytrec_build_dicts"] + s["pytrec_build_evaluator"] + s["pytrec_evaluate_median"]
    )
    rows = [
        (
            "ours evaluate (median)",
            f"{s['ours_evaluate_median']:.3f}",
            "1.0",
            m["ours"]["peak_increase_mib"],
        ),
        (
            "ours evaluate, plain string ids (median)",
            f"{s['ours_string_ids_evaluate_median']:.3f}",
            f"{s['ours_string_ids_evaluate_median'] / s['ours_evaluate_median']:.1f}",
            "",
        ),
        (
            "pytrec_eval evaluate (median)",
            f"{s['pytrec_evaluate_median']:.3f}",
            f"{r['pytrec_evaluate_over_ours']:.1f}",
            m["pytrec"]["peak_increase_mib"],
        ),
        (
            "pytrec_eval dicts + evaluator + evaluate",
            f"{pytrec_total:.3f}",
            f"{r['pytrec_dicts_evaluator_evaluate_over_ours']:.1f}",
            "",
        ),
        (
            "ranx end to end, 1st call",
            f"{s['ranx_end_to_end'][0]:.3f}",
            f"{r['ranx_first_over_ours']:.1f}",
            m["ranx"]["peak_increase_mib"],
        ),
        (
            "ranx end to end, 2nd call",
            f"{s['ranx_end_to_end'][1]:.3f}",
            f"{r['ranx_second_over_ours']:.1f}",
            m["ranx"]["peak_increase_mib_second_call"],
        ),
    ]
    print(f"\n{'':44} {'seconds':>9} {'x ours':>7} {'peak +MiB':>10}")
    for name, secs, ratio, mem in rows:
        print(f"{name:44} {secs:>9} {ratio:>7} {mem!s:>10}")
    a = result["agreement"]
    print(
        f"\nmax |diff| vs pytrec_eval {a['max_abs_diff_vs_pytrec']:.3g}, vs ranx "
        f"{a['max_abs_diff_vs_ranx']:.3g}; NaN exactly where no relevant judgment: "
        f"{a['ours_nan_exactly_where_no_relevant']}"
    )
    print(
        f"target (pytrec_eval evaluate / ours >= 4): "
        f"{'met' if r['target_met'] else 'NOT met'} ({r['pytrec_evaluate_over_ours']:.2f}x)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--only", choices=TOOLS, help=argparse.SUPPRESS)  # memory probe child
    args = parser.parse_args(argv)
    if args.depth != 100 or max(KS) > args.depth:
        parser.error("--depth must be 100: mrr@100 is checked against trec_eval's recip_rank")
    if args.only:
        print(json.dumps(measure_memory(args.only, args)))
        return 0
    result = bench(args)
    print_report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "metrics_speed.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0 if result["agreement"]["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
