"""Compare two runs on the queries both answered: per-metric deltas with paired bootstrap
confidence intervals and a paired randomization test (Holm-corrected across the compared
metrics), regressed and improved queries, new and resolved causes, and label-free drift of
the result lists (overlap@k, RBO).

The store reads them (:mod:`auditor.store.read.compare`, one short read-only connection);
the resampling (:mod:`auditor.paired`) runs in numpy after the connection is closed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.cases import DRIFT
from auditor.metrics.registry import headline, lower_is_better
from auditor.paired import holm, overlap_and_rbo, paired_tests
from auditor.store import Store
from auditor.store.read.compare import (
    CauseChange,
    PairedReads,
    QueryChange,
    Wanted,
    headline_present,
    read_pairs,
)
from auditor.store.read.sample import paired_change

__all__ = [
    "CauseChange", "Comparison", "MetricDelta", "QueryChange", "compare_runs",
    "comparison_table", "holm", "overlap_and_rbo", "paired_tests",
]

CHANGE_EPSILON = 1e-9  # a query moved when a metric changed by more than this
WORST_DRIFT = 20  # queries listed in drift["worst"]


@dataclass(frozen=True)
class MetricDelta:
    metric: str
    n: int  # queries where both runs define the metric
    baseline_mean: float | None  # over those n queries
    current_mean: float | None
    delta: float | None  # current - baseline (mean of the paired differences)
    ci_low: float | None  # paired bootstrap 95% interval of delta
    ci_high: float | None
    p_value: float | None  # two-sided paired randomization (sign-flip) test
    p_holm: float | None  # Holm-adjusted across the compared metrics
    lower_is_better: bool = False


@dataclass
class Comparison:
    baseline_run_id: str
    run_id: str
    shared_queries: int
    only_baseline: int
    only_current: int
    alpha: float
    metrics: list[MetricDelta]
    regressed: list[QueryChange]  # worst first, at most `limit`
    improved: list[QueryChange]  # best first, at most `limit`
    regressed_total: int
    improved_total: int
    new_causes: list[CauseChange]  # at most `limit`
    resolved_causes: list[CauseChange]
    cause_counts: list[dict[str, Any]]  # {"cause", "baseline", "current"} queries per cause
    drift: dict[str, Any]  # {"k", "n", "overlap", "rbo", "changed", "worst": [...]}
    new_causes_total: int = 0
    resolved_causes_total: int = 0
    # queries per cause among all new (resolved) pairs, not only the listed ones
    new_cause_counts: list[dict[str, Any]] = field(default_factory=list)
    resolved_cause_counts: list[dict[str, Any]] = field(default_factory=list)
    # when either run is sampled: "sampled: n of N" and each metric's change as the design
    # estimates it, {"sampled", "changes": {metric: {"delta", "ci_low", "ci_high"}}}
    sampled: dict[str, Any] | None = None

    def metric(self, name: str) -> MetricDelta | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["sampled"] is None:  # two runs over whole logs: the output it always had
            del data["sampled"]
        return data


def compare_runs(
    store: Store,
    baseline_run_id: str,
    run_id: str,
    *,
    metrics: list[str] | None = None,
    k: int = 10,
    alpha: float = 0.05,
    resamples: int = 10_000,
    seed: int = 0,
    limit: int = 100,
) -> Comparison:
    """``run_id`` against ``baseline_run_id``, paired by query id on the shared queries.

    ``metrics`` defaults to the headline metrics at ``k`` present in both runs. Statistics
    are deterministic given ``seed``; the lists are cut at ``limit`` (totals are kept).
    """
    runs = (baseline_run_id, run_id)
    names = list(dict.fromkeys(metrics)) if metrics is not None else headline_present(
        store, runs, headline(k))
    read = read_pairs(store, runs, Wanted(
        names=names, lower=[lower_is_better(name) for name in names], epsilon=CHANGE_EPSILON,
        limit=limit, k=k, last_cause=DRIFT))
    low, high, p = paired_tests(read.diffs, read.defined, resamples=resamples, seed=seed)
    return Comparison(
        baseline_run_id=baseline_run_id, run_id=run_id, shared_queries=read.shared,
        only_baseline=read.only_baseline, only_current=read.only_current, alpha=alpha,
        metrics=_metric_deltas(names, read.means, low, high, p),
        regressed=read.regressed, improved=read.improved,
        regressed_total=read.regressed_total, improved_total=read.improved_total,
        new_causes=read.new.listed, resolved_causes=read.resolved.listed,
        cause_counts=read.cause_counts, drift=_drift(read, k, store.hits_pruned(
            baseline_run_id) or store.hits_pruned(run_id)),
        new_causes_total=read.new.total, resolved_causes_total=read.resolved.total,
        new_cause_counts=read.new.per_cause, resolved_cause_counts=read.resolved.per_cause,
        sampled=_sampled(store, runs, names),
    )


def _sampled(store: Store, runs: tuple[str, str], names: list[str]) -> dict[str, Any] | None:
    """The design-based change of each metric when either run is sampled."""
    change = paired_change(store, *runs, (store.run(runs[0]).get("manifest"),
                                          store.run(runs[1]).get("manifest")), names)
    if change is None:
        return None
    return {"sampled": change.sampled, "design_of": change.run_id, "shared": change.shared,
            "changes": {m: {"delta": e.mean, "ci_low": e.low, "ci_high": e.high}
                        for m, e in change.estimates.items()}}


def comparison_table(comparison: Comparison) -> pa.Table:
    """One row per compared metric, in the columns of the store's ``comparisons`` table."""
    schema = pa.schema([
        ("run_id", pa.string()), ("baseline_run_id", pa.string()), ("metric", pa.string()),
        ("n", pa.int32()), ("baseline_mean", pa.float64()), ("current_mean", pa.float64()),
        ("delta", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
        ("p_value", pa.float64()), ("p_holm", pa.float64()),
    ])
    rows = [
        {"run_id": comparison.run_id, "baseline_run_id": comparison.baseline_run_id,
         **{name: getattr(m, name) for name in schema.names[2:]}}
        for m in comparison.metrics
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def _metric_deltas(
    names: list[str], means: dict[int, tuple], low: np.ndarray, high: np.ndarray,
    p: np.ndarray,
) -> list[MetricDelta]:
    p_values = [None if np.isnan(v) else float(v) for v in p]
    adjusted = holm(p_values)
    out = []
    for pos, name in enumerate(names):
        n, base, cur, delta = means.get(pos, (0, None, None, None))
        defined = n > 0
        out.append(MetricDelta(
            metric=name, n=int(n), baseline_mean=base, current_mean=cur, delta=delta,
            ci_low=float(low[pos]) if defined else None,
            ci_high=float(high[pos]) if defined else None,
            p_value=p_values[pos], p_holm=adjusted[pos], lower_is_better=lower_is_better(name),
        ))
    return out



# drift -----------------------------------------------------------------------------------
def _drift(read: PairedReads, k: int, pruned: bool = False) -> dict[str, Any]:
    """Overlap@k and RBO of the two runs' top-k distinct documents, per shared query; not
    evaluated when ``auditor prune`` dropped either run's hits (no lists to compare, which
    is not "every list changed")."""
    if pruned:
        return {"k": k, "n": 0, "overlap": None, "rbo": None, "changed": 0, "worst": [],
                "not_evaluated": "a run's hits were pruned (auditor prune --keep-hits-days): "
                                 "its result lists are gone"}
    lists, common = read.lists, read.common
    overlap, rbo = overlap_and_rbo(
        np.asarray(lists["na"]), np.asarray(lists["nb"]), np.asarray(common["qi"]),
        np.asarray(common["depth"]), k)
    defined = np.flatnonzero(~np.isnan(overlap))
    worst = defined[np.lexsort((defined, rbo[defined], overlap[defined]))][:WORST_DRIFT]
    return {
        "k": k, "n": len(defined),
        "overlap": float(overlap[defined].mean()) if len(defined) else None,
        "rbo": float(rbo[defined].mean()) if len(defined) else None,
        "changed": int((~np.asarray(lists["same"], dtype=bool)).sum()),
        "worst": [{"query_id": str(lists["query_id"][i]), "query": lists["query"][i],
                   "overlap": float(overlap[i]), "rbo": float(rbo[i])} for i in worst],
    }
