"""Ranking metrics over whole runs at once, as trec_eval computes them.

Input is columnar: one row per hit, grouped by query and in rank order (the order replay
writes them in; sorting costs 9x the kernel, so it is never done here). Every query named
in ``query_ids`` gets a value or null. A value is null (NaN) when the query has no
judged-relevant item: such queries are reported, never averaged in.

Definitions (``rel`` = judged grade >= 1, top-k = the first k distinct ids):

- ``recall@k``    = |rel ∩ top-k| / |rel|
- ``precision@k`` = |rel ∩ top-k| / k (divides by k even when fewer hits came back)
- ``hit@k``       = 1 if any relevant item is in top-k
- ``mrr@k``       = 1 / rank of the first relevant item if that rank <= k, else 0
- ``ndcg@k``      = DCG@k / IDCG@k, gain = the judged grade, discount log2(rank + 1), the
  ideal ranking from all judgments of the query (trec_eval ``ndcg_cut``)
- ``judged@k``    = judged ids in top-k / min(k, hits) (ir_measures ``Judged``); null
  when nothing came back
- ``complete@k``  = 1 if every relevant item is in top-k
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.metrics.registry import Metric, format_metric, ranking_measures

Measure = Literal["recall", "precision", "hit", "mrr", "ndcg", "judged", "complete"]
MEASURES: tuple[Measure, ...] = ranking_measures()  # type: ignore[assignment]


def metrics_for(ks: Sequence[int], measures: Sequence[Measure] = MEASURES) -> list[Metric]:
    return [Metric(measure, k) for measure in measures for k in sorted(set(ks))]


@dataclass(frozen=True)
class Qrels:
    """Judgments as columns; a grade >= 1 counts as relevant."""

    query_id: pa.Array
    doc_id: pa.Array
    grade: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str, int]]) -> Qrels:
        """Later duplicates of a (query, doc) pair win, as when reading a qrels file twice."""
        latest = {(q, d): r for q, d, r in rows}
        return cls(
            pa.array([q for q, _ in latest], pa.string()),
            pa.array([d for _, d in latest], pa.string()),
            np.fromiter(latest.values(), dtype=np.int64, count=len(latest)),
        )


def evaluate(
    query_ids: Sequence[str],
    hit_query_ids: pa.Array | Sequence[str],
    hit_ids: pa.Array | Sequence[str],
    qrels: Qrels,
    metrics: Sequence[Metric],
    collapse: bool = True,
) -> dict[str, np.ndarray]:
    """Per-query values of ``metrics``: ``{"recall@10": float64[len(query_ids)], ...}``.

    Hits come grouped by query, in the order of ``query_ids``, each group in rank order.
    ``hit_ids`` may be strings or a dictionary-encoded Arrow array (as Parquet and DuckDB
    hand them out); then each distinct id is hashed once instead of once per hit.
    ``hit_ids`` are document ids for document-level evaluation (a chunk ranking collapses
    to its first occurrence per document) or chunk ids for chunk-level evaluation. Callers
    whose ids are already distinct within each query pass ``collapse=False`` and skip the
    costliest step (hashing every id).
    """
    queries = pa.array(list(query_ids), pa.string())
    n_queries = len(queries)
    hit_q = pa.array(hit_query_ids, pa.string())
    hit_d = _id_array(hit_ids)
    groups = _query_groups(hit_q, queries)
    if collapse and len(hit_d):
        keep = _first_occurrence(groups.expand(), hit_d)
        hit_d = hit_d.filter(pa.array(keep))
        groups = groups.keeping(keep)
    hits_per_query = np.zeros(n_queries, dtype=np.int64)
    hits_per_query[groups.query] = groups.size

    judged_q, judged_rank, grade = _judged(groups, hit_d, queries, qrels)
    relevant = grade >= 1
    rel_q, rel_rank = judged_q[relevant], judged_rank[relevant]
    first_q, first_at = np.unique(rel_q, return_index=True)  # rows ascend: first = best rank
    first_rank = np.full(n_queries, np.inf)
    first_rank[first_q] = rel_rank[first_at]
    gain = np.maximum(grade, 0.0) / np.log2(judged_rank + 1.0)  # negative grades gain nothing

    num_rel, ideal_q, ideal_rank, ideal_gain = _ideal(queries, qrels)
    undefined = num_rel == 0
    ideal_discounted = ideal_gain / np.log2(ideal_rank + 1.0)

    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        k = metric.k
        if metric.measure not in MEASURES or k is None:
            raise ValueError(f"{metric} is not a ranking measure: use one of {MEASURES}")
        found_k = np.bincount(rel_q[rel_rank <= k], minlength=n_queries).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric.measure == "recall":
                value = found_k / num_rel
            elif metric.measure == "precision":
                value = found_k / k
            elif metric.measure == "hit":
                value = (found_k > 0).astype(np.float64)
            elif metric.measure == "complete":
                value = (found_k == num_rel).astype(np.float64)
            elif metric.measure == "mrr":
                value = np.where(first_rank <= k, 1.0 / first_rank, 0.0)
            elif metric.measure == "ndcg":
                within = judged_rank <= k
                dcg = np.bincount(judged_q[within], weights=gain[within], minlength=n_queries)
                idcg = np.bincount(
                    ideal_q, weights=ideal_discounted * (ideal_rank <= k), minlength=n_queries
                )
                value = np.where(idcg > 0, dcg / idcg, 0.0)
            else:  # judged
                counted = np.bincount(judged_q[judged_rank <= k], minlength=n_queries)
                value = counted / np.minimum(hits_per_query, k)
        value = value.astype(np.float64)
        value[undefined] = np.nan
        out[format_metric(metric)] = value
    return out


def _judged(groups: _Groups, hit_d: pa.Array, queries: pa.Array, qrels: Qrels
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query position, rank and grade of every hit that carries a judgment, in row order.

    Every id is hashed once (``index_in`` against the judged ids); the (query, id) join then
    runs on integer keys, and only for hits whose id is judged for some query.
    """
    judged_ids = pc.unique(qrels.doc_id)
    width = max(len(judged_ids), 1)
    if pa.types.is_dictionary(hit_d.type):  # hash the distinct ids only, then look up codes
        per_value = pc.fill_null(pc.index_in(hit_d.dictionary, value_set=judged_ids), -1)
        code = per_value.to_numpy().astype(np.int64)[hit_d.indices.to_numpy(zero_copy_only=False)]
    else:
        code = pc.fill_null(pc.index_in(hit_d, value_set=judged_ids), -1).to_numpy()
    maybe = np.flatnonzero(code >= 0)
    maybe_q, maybe_rank = groups.locate(maybe)
    hit_key = maybe_q * width + code[maybe]
    qpos = pc.index_in(qrels.query_id, value_set=queries)
    in_run = qpos.is_valid().to_numpy(zero_copy_only=False)
    qcode = pc.index_in(qrels.doc_id, value_set=judged_ids).to_numpy(zero_copy_only=False)
    qrel_key = qpos.drop_null().to_numpy().astype(np.int64) * width + qcode[in_run]
    order = np.argsort(qrel_key, kind="stable")
    sorted_keys = qrel_key[order]
    at = np.searchsorted(sorted_keys, hit_key)
    at_clipped = np.minimum(at, max(len(sorted_keys) - 1, 0))
    match = (at < len(sorted_keys)) & (sorted_keys[at_clipped] == hit_key) if len(sorted_keys) \
        else np.zeros(len(hit_key), dtype=bool)
    grades = qrels.grade[in_run][order[at_clipped[match]]].astype(np.float64)
    return maybe_q[match], maybe_rank[match], grades


@dataclass(frozen=True)
class _Groups:
    """The hits' runs of one query each: which query, and where each run ends.

    Keeps the per-hit query index and rank implicit: they are looked up for the few rows
    that need them (judged hits) instead of materialised for every hit.
    """

    query: np.ndarray  # position in query_ids of each run, ascending
    end: np.ndarray  # exclusive end row of each run

    @property
    def size(self) -> np.ndarray:
        return np.diff(self.end, prepend=0)

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Query position and 1-based rank of each row."""
        run = np.searchsorted(self.end, rows, side="right")
        return self.query[run], rows - (self.end[run] - self.size[run]) + 1

    def expand(self) -> np.ndarray:
        return np.repeat(self.query, self.size)

    def keeping(self, keep: np.ndarray) -> _Groups:
        """The runs after dropping rows (each run keeps at least its first row)."""
        kept = np.add.reduceat(keep.astype(np.int64), self.end - self.size)
        return _Groups(self.query, np.cumsum(kept))


def _query_groups(hit_q: pa.Array, queries: pa.Array) -> _Groups:
    """The runs of hits by query, each query looked up once per run."""
    if not len(hit_q):
        return _Groups(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    runs = pc.run_end_encode(hit_q)
    position = pc.index_in(runs.values, value_set=queries)
    if position.null_count:
        raise ValueError("hits name a query that is not in query_ids")
    group = position.to_numpy(zero_copy_only=False).astype(np.int64)
    if np.any(group[1:] <= group[:-1]):
        raise ValueError("hits must be grouped by query in the order of query_ids")
    return _Groups(group, runs.run_ends.to_numpy(zero_copy_only=False).astype(np.int64))


def _id_array(ids: pa.Array | Sequence[str]) -> pa.Array:
    """Ids as one Arrow array: dictionary-encoded arrays stay encoded, the rest are strings."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.Array) and pa.types.is_dictionary(ids.type):
        if ids.type.value_type != pa.string():
            ids = ids.cast(pa.dictionary(ids.type.index_type, pa.string()))
        return ids
    return pa.array(ids, pa.string())


def _first_occurrence(qidx: np.ndarray, ids: pa.Array) -> np.ndarray:
    """Mask keeping the first row of each (query, id): a chunk ranking → document ranking."""
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()  # a dictionary may repeat a value: compare the strings
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
    gains = qrels.grade[valid].astype(np.float64)
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
