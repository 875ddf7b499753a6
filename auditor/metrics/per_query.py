"""One replayed batch → the Arrow tables the store appends (one short transaction).

Every per-query number is computed here, vectorised where it matters (ranking metrics) and
per query where the inputs are small (answer evidence, drift).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.cases import Diagnosis
from auditor.config import AuditSettings
from auditor.metrics.drift import drift_many, overlap_at_k, rbo
from auditor.metrics.ranking import Qrels, evaluate, metrics_for
from auditor.metrics.registry import format_metric, metric_name
from auditor.records import Hit, HitList, LogRecord, QuarantineEntry, ServedItem, hit_field
from auditor.replay import Replayed
from auditor.store import ABLATION_HITS, CONFLICTS
from auditor.trace import AnswerTrace, coverage, index_coverage


@dataclass
class BatchResult:
    """What one batch produced, ready to be turned into tables."""

    first_seq: int
    rows: list[Replayed]
    judgments: dict[str, dict[str, int]]  # query id → {id: grade}, file + inline merged
    served: dict[str, list[str]]  # query id → served ids at the run's level
    traces: dict[str, AnswerTrace]
    diagnoses: list[Diagnosis]
    # query id → ablation mode → its ranking (the missed queries'; the run's mode left out)
    ablations: dict[str, dict[str, list[Hit]]] = field(default_factory=dict)


def judgments_for(record: LogRecord, from_file: dict[str, dict[str, int]]) -> dict[str, int]:
    """The qrels file's judgments, overlaid with the record's inline ``relevant``."""
    merged = dict(from_file.get(record.query_id, {}))
    merged.update(record.judgments or {})
    return merged


def ranked_ids(row: Replayed, level: str) -> list[str]:
    """Replayed ids at the level: chunk ids, or document ids by first occurrence."""
    return list(dict.fromkeys(hit_field(row.hits, "doc_id" if level == "doc" else "chunk_id")))


def batch_tables(run_id: str, batch: BatchResult, settings: AuditSettings) -> dict[str, pa.Table]:
    """The batch's rows, hits, judgments, metrics and traces. A query whose replay failed
    gets its row (with the error) but no metrics: nothing about it was measured.

    Built column by column (one pass per field, Arrow ``take`` for repeated ids), not a
    Python tuple or dict per hit or metric row: at 100 hits and ~50 metrics a query those
    were most of the auditor's own time (bench/scale.py)."""
    rows = [row for row in batch.rows if row.status != "error"]
    query_ids = [row.record.query_id for row in rows]
    every_id = [row.record.query_id for row in batch.rows]
    blocks: list[pa.Table] = []
    ranked = {q: ranked_ids(row, settings.level) for q, row in zip(query_ids, rows, strict=True)}
    hit_q, hit_ids = _flat(query_ids, ranked)
    replay_values = _ranking(query_ids, hit_q, hit_ids, batch.judgments, settings,
                             collapse=False)
    _extend(blocks, query_ids, replay_values)
    served_rows = {q: ids for q, ids in batch.served.items() if ids}
    if served_rows:
        served_queries = [q for q in query_ids if q in served_rows]
        served_values = _ranking(served_queries, *_flat(served_queries, served_rows),
                                 batch.judgments, settings, only="recall")
        position = np.fromiter((i for i, q in enumerate(query_ids) if q in served_rows),
                               np.int64, len(served_queries))
        for k in settings.k:
            served = served_values[metric_name("recall", k)]
            delta = replay_values[metric_name("recall", k)][position] - served
            _extend(blocks, served_queries, {metric_name("served_recall", k): served,
                                             metric_name("recall_delta", k): delta})
    drift = _drift(query_ids, ranked, hit_ids, served_rows, settings.k)
    metric_rows: list[tuple[str, str, float | None]] = []
    overlap = {k: metric_name("overlap", k) for k in settings.k}
    scatter_judged, rank_biased = metric_name("scatter_judged"), metric_name("rbo")
    for row in rows:
        query_id = row.record.query_id
        relevant = sum(grade >= 1 for grade in batch.judgments.get(query_id, {}).values())
        if relevant:  # with judgments, scatter is the relevant documents the answer needs
            metric_rows.append((query_id, scatter_judged, float(relevant)))
        if query_id in drift:
            *overlaps, rank_biased_overlap = drift[query_id]
            metric_rows.extend((query_id, overlap[k], value)
                               for k, value in zip(settings.k, overlaps, strict=True))
            metric_rows.append((query_id, rank_biased, rank_biased_overlap))
        trace = batch.traces.get(query_id)
        if trace is not None:
            metric_rows.extend((query_id, name, value)
                               for name, value in answer_metrics(trace, settings.k).items())
    blocks.append(pa.table({
        "query_id": pa.array([q for q, _, _ in metric_rows], pa.string()),
        "metric": pa.array([m for _, m, _ in metric_rows], pa.string()),
        "value": pa.array([_finite(v) for _, _, v in metric_rows], pa.float64()),
    }))
    silver = _silver_recall(rows, batch.traces, settings)
    _extend(blocks, [q for q in query_ids if q in batch.traces], silver)
    return {
        "query_results": _query_results(run_id, batch),
        "hits": _hits(run_id, batch, settings.kept_hits),
        ABLATION_HITS: _ablation_hits(run_id, batch, settings.diagnose_k),
        "judgments": _with_run(run_id, pa.table({
            "query_id": [q for q in every_id for _ in batch.judgments.get(q, {})],
            "doc_id": [d for q in every_id for d in batch.judgments.get(q, {})],
            "grade": pa.array([g for q in every_id for g in batch.judgments.get(q, {})
                               .values()], pa.int32()),
        })),
        "metrics": _with_run(run_id, pa.concat_tables(blocks)),
        **trace_tables(run_id, batch),
    }


def answer_metrics(trace: AnswerTrace, ks: Sequence[int]) -> dict[str, float | None]:
    """Coverage, scatter and effective sources of one traced answer."""
    values: dict[str, float | None] = {
        metric_name("answer_coverage"): coverage(trace, None),
        metric_name("index_coverage"): index_coverage(trace),
        metric_name("scatter_docs"): trace.doc_cover.size,
        metric_name("scatter_chunks"): trace.chunk_cover.size,
        metric_name("effective_sources"): trace.effective_sources,
    }
    for k in ks:
        values[metric_name("answer_coverage", k)] = coverage(trace, k)
        size = trace.chunk_cover.size
        values[metric_name("gatherable", k)] = None if size is None else float(size <= k)
    return values


def _ranking(query_ids: list[str], hit_q: pa.Array, hit_ids: pa.Array,
             judgments: dict[str, dict[str, int]], settings: AuditSettings,
             only: str | None = None, collapse: bool = True) -> dict[str, Any]:
    qrels = Qrels.from_rows([(q, d, g) for q in query_ids for d, g in judgments.get(q, {}).items()])
    metrics = metrics_for(settings.k, [only]) if only else metrics_for(settings.k)
    return evaluate(query_ids, hit_q, hit_ids, qrels, metrics, collapse=collapse)


def _drift(query_ids: list[str], ranked: dict[str, list[str]], hit_ids: pa.Array,
           served: dict[str, list[str]], ks: Sequence[int]
           ) -> dict[str, list[float | None]]:
    """overlap@k (each k) and rbo of every query with a served list, by query id.

    Computed for the whole batch at once (``drift_many``, on the ranked ids already laid
    out for the metric kernel); a served list that repeats an id is measured alone, by the
    functions ``drift_many`` equals."""
    out: dict[str, list[float | None]] = {}
    chosen = [q for q in query_ids if q in served]
    if chosen:
        lengths = np.fromiter((len(ranked[q]) for q in query_ids), np.int64, len(query_ids))
        has = np.fromiter((q in served for q in query_ids), bool, len(query_ids))
        overlap, rank_biased, repeats = drift_many(
            [served[q] for q in chosen], hit_ids.filter(pa.array(np.repeat(has, lengths))),
            lengths[has], ks)
        columns = [overlap[k].tolist() for k in ks] + [rank_biased.tolist()]
        out = {q: list(values) for q, *values, repeated in
               zip(chosen, *columns, repeats.tolist(), strict=True) if not repeated}
    for q in query_ids:  # a list with repeats, one query at a time
        if q in served and q not in out:
            out[q] = [overlap_at_k(served[q], ranked[q], k) for k in ks] + \
                [rbo(served[q], ranked[q])]
    return out


def _flat(query_ids: list[str], ranked: dict[str, list[str]]) -> tuple[pa.Array, pa.Array]:
    """Each query's ranked ids as the kernel's two columns (query id per hit, id), grouped
    by query in the order of ``query_ids``."""
    lengths = np.fromiter((len(ranked.get(q, ())) for q in query_ids), np.int64,
                          len(query_ids))
    hit_q = _repeated(pa.array(query_ids, pa.string()), lengths)
    hit_ids = pa.array(list(chain.from_iterable(ranked.get(q, ()) for q in query_ids)),
                       pa.string())
    return hit_q, hit_ids


def _repeated(values: pa.Array, times: np.ndarray) -> pa.Array:
    """``values[i]`` repeated ``times[i]`` times, in order (Arrow ``take``, no Python loop)."""
    return values.take(pa.array(np.repeat(np.arange(len(values), dtype=np.int64), times)))


def _silver_recall(rows: list[Replayed], traces: dict[str, AnswerTrace],
                   settings: AuditSettings) -> dict[str, Any]:
    """Recall against the answer's evidence documents (silver labels, never judgments)."""
    traced = [row for row in rows if row.record.query_id in traces]
    if not traced:
        return {}
    evidence = {row.record.query_id: traces[row.record.query_id].evidence_docs()
                for row in traced}
    ranked = {row.record.query_id: ranked_ids(row, "doc") for row in traced}
    query_ids = [row.record.query_id for row in traced]
    recall = metrics_for(settings.k, ["recall"])
    hit_q, hit_ids = _flat(query_ids, ranked)
    values = evaluate(query_ids, hit_q, hit_ids,
                      Qrels.from_rows([(q, d, 1) for q in query_ids for d in evidence[q]]),
                      recall)
    return {metric_name("silver_recall", m.k): values[format_metric(m)] for m in recall}


def _extend(out: list[pa.Table], query_ids: list[str], values: dict[str, Any]) -> None:
    """One metric block per name: the queries, the name, the values (NaN stored as null)."""
    if not query_ids:
        return
    queries = pa.array(query_ids, pa.string())
    for name, column in values.items():
        out.append(pa.table({
            "query_id": queries, "metric": pa.repeat(pa.scalar(name, pa.string()), len(queries)),
            "value": pa.array(np.asarray(column, dtype=np.float64), pa.float64(),
                              from_pandas=True),
        }))


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def _query_results(run_id: str, batch: BatchResult) -> pa.Table:
    rows, records = batch.rows, [row.record for row in batch.rows]
    return pa.table({
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), len(rows)),
        "seq": pa.array(range(batch.first_seq, batch.first_seq + len(rows)), pa.int64()),
        "query_id": [r.query_id for r in records],
        "query": [r.query for r in records],
        "status": [row.status for row in rows],
        "error": [row.error for row in rows],
        "n_hits": pa.array([len(row.hits) for row in rows], pa.int64()),
        "replay_latency_ms": [row.replay_latency_ms for row in rows],
        "took_ms": [row.took_ms for row in rows],
        "logged_at": [r.logged_at for r in records],
        "served_latency_ms": [r.served_latency_ms for r in records],
        "served": [_served_json(r.served) for r in records],
        "answer": [r.answer for r in records],
        "cited": [_json(r.cited) for r in records],
        "metadata": [_json(r.metadata or None) for r in records],
    })


def _ablation_hits(run_id: str, batch: BatchResult, keep: int) -> pa.Table:
    """The top ``keep`` of each ablation ranking of the batch's missed queries (the judging
    queue pools them): few rows, one per hit."""
    seq = {row.record.query_id: batch.first_seq + i for i, row in enumerate(batch.rows)}
    rows = [(seq[q], q, mode, hit) for q, modes in batch.ablations.items()
            for mode, hits in modes.items() for hit in hits[:keep]]
    return _with_run(run_id, pa.table({
        "seq": pa.array([s for s, _, _, _ in rows], pa.int64()),
        "query_id": pa.array([q for _, q, _, _ in rows], pa.string()),
        "mode": pa.array([m for _, _, m, _ in rows], pa.string()),
        "rank": pa.array([h.rank for _, _, _, h in rows], pa.int32()),
        "chunk_id": pa.array([h.chunk_id for _, _, _, h in rows], pa.string()),
        "doc_id": pa.array([h.doc_id for _, _, _, h in rows], pa.string()),
        "score": pa.array([h.score for _, _, _, h in rows], pa.float64()),
    }))


def _hits(run_id: str, batch: BatchResult, keep: int) -> pa.Table:
    """The first ``keep`` hits of every query of the batch (``store_depth``), one column at
    a time: the metrics above saw every hit fetched, the store keeps the top of each list."""
    kept = [row.hits[:keep] for row in batch.rows]
    lengths = np.fromiter(map(len, kept), np.int64, len(kept))
    first = batch.first_seq
    chunk_ids, doc_ids, ranks, scores = _hit_columns([hits for hits in kept if hits])
    return _with_run(run_id, pa.table({
        "seq": pa.array(np.repeat(np.arange(first, first + len(batch.rows), dtype=np.int64),
                                  lengths)),
        "query_id": _repeated(pa.array([row.record.query_id for row in batch.rows],
                                       pa.string()), lengths),
        "rank": pa.array(ranks, pa.int64()),
        "chunk_id": chunk_ids,
        "doc_id": doc_ids,
        "score": pa.array(scores, pa.float64()),
    }))


def _hit_columns(lists: list[Sequence[Hit]]
                 ) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    """Chunk ids, document ids, ranks and scores of the lists' hits, laid end to end: array
    concatenation when every list is a ``HitList``, else a pass per field over the hits."""
    if all(isinstance(hits, HitList) for hits in lists):
        columns: list[HitList] = lists  # type: ignore[assignment]
        lengths = np.fromiter(map(len, columns), np.int64, len(columns))
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return (_strings([h.chunk_ids for h in columns]), _strings([h.doc_ids for h in columns]),
                np.arange(int(lengths.sum()), dtype=np.int64) - starts + 1,
                np.concatenate([h.scores for h in columns]) if columns else np.zeros(0))
    hits = list(chain.from_iterable(lists))
    return (pa.array(list(map(attrgetter("chunk_id"), hits)), pa.string()),
            pa.array(list(map(attrgetter("doc_id"), hits)), pa.string()),
            np.fromiter(map(attrgetter("rank"), hits), np.int64, len(hits)),
            np.fromiter(map(attrgetter("score"), hits), np.float64, len(hits)))


def _strings(parts: list[np.ndarray]) -> pa.Array:
    return pa.array(np.concatenate(parts) if parts else [], pa.string())


def trace_tables(run_id: str, batch: BatchResult) -> dict[str, pa.Table]:
    sentences, support, scatter, conflicts = [], [], [], []
    passages: dict[str, dict[str, str | None]] = {}
    for query_id, trace in batch.traces.items():
        for chunk_id, entry in trace.passages.items():
            passages[chunk_id] = {"run_id": run_id, "chunk_id": chunk_id,
                                  "doc_id": entry["doc_id"], "title": entry.get("title"),
                                  "text": entry.get("text")}
        for s in trace.sentences:
            sentences.append({
                "run_id": run_id, "query_id": query_id, "idx": s.index, "text": s.text,
                "start_char": s.start, "end_char": s.end, "status": s.status,
                "served_score": s.served_score, "replayed_rank": s.replayed_rank,
                "best_chunk_id": s.best_chunk_id, "best_doc_id": s.best_doc_id,
                "best_score": s.best_score, "composite": s.composite,
            })
            support.extend({
                "run_id": run_id, "query_id": query_id, "idx": s.index, "origin": u.origin,
                "chunk_id": u.chunk_id, "doc_id": u.doc_id, "rank": u.rank, "score": u.score,
            } for u in s.supports)
            conflicts.extend({
                "run_id": run_id, "query_id": query_id, "idx": s.index, "origin": c.origin,
                "rank": c.rank, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "kind": c.kind,
                "answer_value": c.answer, "passage_value": c.passage,
            } for c in s.conflicts)
        for level, cover in (("doc", trace.doc_cover), ("chunk", trace.chunk_cover)):
            scatter.append({"run_id": run_id, "query_id": query_id, "level": level,
                            "size": cover.size, "approx": cover.approx,
                            "sources": json.dumps(list(cover.sources))})
    diagnoses = [{"run_id": run_id, "query_id": d.query_id, "cause": d.cause,
                  "target_id": d.target_id, "evidence": json.dumps(d.evidence, default=str)}
                 for d in batch.diagnoses]
    return {name: pa.Table.from_pylist(rows) for name, rows in (
        ("sentences", sentences), ("support", support), ("scatter", scatter),
        ("diagnoses", diagnoses), ("passages", list(passages.values())),
        (CONFLICTS, conflicts))}


def _with_run(run_id: str, table: pa.Table) -> pa.Table:
    return table.add_column(0, "run_id", pa.repeat(pa.scalar(run_id, pa.string()),
                                                    table.num_rows))


def quarantine_table(run_id: str, entries: list[QuarantineEntry]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"run_id": run_id, "source": e.source, "line": e.line, "field": e.field,
          "reason": e.reason, "raw": e.raw} for e in entries],
        schema=pa.schema([("run_id", pa.string()), ("source", pa.string()),
                          ("line", pa.int64()), ("field", pa.string()),
                          ("reason", pa.string()), ("raw", pa.string())]),
    )


def _served_json(items: list[ServedItem] | None) -> str | None:
    """``json.dumps`` of the items' ``model_dump()``, with the dicts built by hand: pydantic's
    dump per item cost half of the batch's query rows (bench/scale.py)."""
    if not items:
        return None
    return json.dumps([{"id": i.id, "rank": i.rank, "score": i.score} for i in items])


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)
