"""Ranking metrics over whole runs at once, as trec_eval computes them.

Input is columnar: one row per hit, grouped by query and in rank order (the order replay
writes them in; sorting costs 9x the kernel, so it is never done here). Every query named
in ``query_ids`` gets a value or null. A value is null (NaN) when the query has no
judged-relevant item: such queries are reported, never averaged in.

Definitions (``rel`` = judged relevance >= 1, top-k = the first k distinct ids):

- ``recall@k``    = |rel ∩ top-k| / |rel|
- ``precision@k`` = |rel ∩ top-k| / k (divides by k even when fewer hits came back)
- ``hit@k``       = 1 if any relevant item is in top-k
- ``mrr@k``       = 1 / rank of the first relevant item if that rank <= k, else 0
- ``ndcg@k``      = DCG@k / IDCG@k, gain = relevance grade, discount log2(rank + 1), the
  ideal ranking from all judgments of the query (trec_eval ``ndcg_cut``)
- ``judged@k``    = judged ids in top-k / min(k, hits) (ir_measures ``Judged``); null
  when nothing came back
- ``complete@k``  = 1 if every relevant item is in top-k
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Measure = Literal["recall", "precision", "hit", "mrr", "ndcg", "judged", "complete"]
MEASURES: tuple[Measure, ...] = ("recall", "precision", "hit", "mrr", "ndcg", "judged", "complete")
_NAME = re.compile(r"^(?P<measure>[a-z]+)@(?P<k>[1-9][0-9]*)$")


class MetricNameError(ValueError):
    """A metric name that does not parse, e.g. ``recal@10`` or ``ndcg@0``."""


@dataclass(frozen=True, order=True, slots=True)
class Metric:
    measure: Measure
    k: int

    def __str__(self) -> str:
        return format_metric(self)


def parse_metric(name: str) -> Metric:
    """``"recall@10"`` → ``Metric("recall", 10)``; the inverse of :func:`format_metric`."""
    match = _NAME.match(name.strip().lower())
    if not match or match["measure"] not in MEASURES:
        raise MetricNameError(
            f"unknown metric {name!r}: use one of {', '.join(MEASURES)} followed by @k"
        )
    return Metric(match["measure"], int(match["k"]))  # type: ignore[arg-type]


def format_metric(metric: Metric) -> str:
    return f"{metric.measure}@{metric.k}"


def metrics_for(ks: Sequence[int], measures: Sequence[Measure] = MEASURES) -> list[Metric]:
    return [Metric(measure, k) for measure in measures for k in sorted(set(ks))]


@dataclass(frozen=True)
class Qrels:
    """Judgments as columns; relevance >= 1 counts as relevant."""

    query_id: pa.Array
    doc_id: pa.Array
    relevance: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str, int]]) -> Qrels:
        """Later duplicates of a (query, doc) pair win, as when reading a qrels file twice."""
        latest = {(q, d): r for q, d, r in rows}
        return cls(
            pa.array([q for q, _ in latest], pa.string()),
            pa.array([d for _, d in latest], pa.string()),
            np.fromiter(latest.values(), dtype=np.int64, count=len(latest)),
        )


def _keys(query_ids: pa.Array, doc_ids: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(query_ids, doc_ids, "\x1f")


def evaluate(
    query_ids: Sequence[str],
    hit_query_ids: pa.Array | Sequence[str],
    hit_ids: pa.Array | Sequence[str],
    qrels: Qrels,
    metrics: Sequence[Metric],
) -> dict[str, np.ndarray]:
    """Per-query values of ``metrics``: ``{"recall@10": float64[len(query_ids)], ...}``.

    ``hit_ids`` are document ids for document-level evaluation (a chunk ranking collapses
    to its first occurrence per document here) or chunk ids for chunk-level evaluation.
    """
    queries = pa.array(list(query_ids), pa.string())
    n_queries = len(queries)
    hit_q = pa.array(hit_query_ids, pa.string())
    hit_d = pa.array(hit_ids, pa.string())
    qidx = pc.index_in(hit_q, value_set=queries)
    if qidx.null_count:
        raise ValueError("hits name a query that is not in query_ids")
    qidx_np = qidx.to_numpy(zero_copy_only=False).astype(np.int64)

    keep = _first_occurrence(qidx_np, hit_d)
    qidx_np = qidx_np[keep]
    hit_keys = _keys(hit_q.filter(pa.array(keep)), hit_d.filter(pa.array(keep)))
    starts = np.searchsorted(qidx_np, qidx_np, side="left")
    rank = np.arange(len(qidx_np), dtype=np.int64) - starts + 1

    position = pc.index_in(hit_keys, value_set=_keys(qrels.query_id, qrels.doc_id))
    judged = position.is_valid().to_numpy(zero_copy_only=False)
    grade = np.zeros(len(qidx_np), dtype=np.float64)
    grade[judged] = qrels.relevance[position.drop_null().to_numpy()]

    num_rel, ideal_q, ideal_rank, ideal_gain = _ideal(queries, qrels)
    undefined = num_rel == 0
    relevant = grade >= 1
    rel_ranks = rank[relevant]
    first_q, first_at = np.unique(qidx_np[relevant], return_index=True)
    first_rank = np.full(n_queries, np.inf)
    first_rank[first_q] = rel_ranks[first_at]
    hits_per_query = np.bincount(qidx_np, minlength=n_queries)
    discount = 1.0 / np.log2(rank + 1.0)
    gain = np.maximum(grade, 0.0) * discount  # negative grades gain nothing
    ideal_discounted = ideal_gain / np.log2(ideal_rank + 1.0)

    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        k = metric.k
        within = rank <= k
        found = np.bincount(qidx_np, weights=(relevant & within), minlength=n_queries)
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric.measure == "recall":
                value = found / num_rel
            elif metric.measure == "precision":
                value = found / k
            elif metric.measure == "hit":
                value = (found > 0).astype(np.float64)
            elif metric.measure == "complete":
                value = (found == num_rel).astype(np.float64)
            elif metric.measure == "mrr":
                value = np.where(first_rank <= k, 1.0 / first_rank, 0.0)
            elif metric.measure == "ndcg":
                dcg = np.bincount(qidx_np, weights=gain * within, minlength=n_queries)
                idcg = np.bincount(
                    ideal_q, weights=ideal_discounted * (ideal_rank <= k), minlength=n_queries
                )
                value = np.where(idcg > 0, dcg / idcg, 0.0)
            else:  # judged
                counted = np.bincount(qidx_np, weights=(judged & within), minlength=n_queries)
                value = counted / np.minimum(hits_per_query, k)
        value = value.astype(np.float64)
        value[undefined] = np.nan
        out[format_metric(metric)] = value
    return out


def _first_occurrence(qidx: np.ndarray, ids: pa.Array) -> np.ndarray:
    """Mask keeping the first row of each (query, id): a chunk ranking → document ranking."""
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    combined = qidx * (int(codes.max(initial=0)) + 1) + codes
    _, first = np.unique(combined, return_index=True)
    keep = np.zeros(len(qidx), dtype=bool)
    keep[first] = True
    return keep


def _ideal(
    queries: pa.Array, qrels: Qrels
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per query: number relevant; and the ideal ranking's (query, rank, gain) rows."""
    n_queries = len(queries)
    qpos = pc.index_in(qrels.query_id, value_set=queries)
    valid = qpos.is_valid().to_numpy(zero_copy_only=False)
    q = qpos.drop_null().to_numpy().astype(np.int64)
    gains = qrels.relevance[valid].astype(np.float64)
    positive = gains > 0
    q, gains = q[positive], gains[positive]
    num_rel = np.bincount(q[gains >= 1], minlength=n_queries).astype(np.float64)
    order = np.lexsort((-gains, q))
    q, gains = q[order], gains[order]
    ranks = np.arange(len(q)) - np.searchsorted(q, q, side="left") + 1
    return num_rel, q, ranks, gains


@dataclass(frozen=True)
class Mean:
    """A mean over the queries where the metric is defined, with how many those were."""

    value: float | None
    n: int


def means(values: dict[str, np.ndarray]) -> dict[str, Mean]:
    out = {}
    for name, column in values.items():
        defined = ~np.isnan(column)
        n = int(defined.sum())
        out[name] = Mean(float(column[defined].mean()) if n else None, n)
    return out
