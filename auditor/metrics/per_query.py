"""One replayed batch → the Arrow tables the store appends (one short transaction).

Every per-query number is computed here, vectorised where it matters (ranking metrics) and
per query where the inputs are small (answer evidence, drift).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from auditor.cases import Diagnosis
from auditor.config import AuditSettings
from auditor.metrics.drift import overlap_at_k, rbo
from auditor.metrics.ranking import Qrels, evaluate, metrics_for
from auditor.metrics.registry import format_metric, metric_name
from auditor.records import LogRecord, QuarantineEntry
from auditor.replay import Replayed
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


def judgments_for(record: LogRecord, from_file: dict[str, dict[str, int]]) -> dict[str, int]:
    """The qrels file's judgments, overlaid with the record's inline ``relevant``."""
    merged = dict(from_file.get(record.query_id, {}))
    merged.update(record.judgments or {})
    return merged


def ranked_ids(row: Replayed, level: str) -> list[str]:
    """Replayed ids at the level: chunk ids, or document ids by first occurrence."""
    ids = [hit.doc_id if level == "doc" else hit.chunk_id for hit in row.hits]
    return list(dict.fromkeys(ids))


def batch_tables(run_id: str, batch: BatchResult, settings: AuditSettings) -> dict[str, pa.Table]:
    """The batch's rows, hits, judgments, metrics and traces. A query whose replay failed
    gets its row (with the error) but no metrics: nothing about it was measured."""
    rows = [row for row in batch.rows if row.status != "error"]
    query_ids = [row.record.query_id for row in rows]
    every_id = [row.record.query_id for row in batch.rows]
    metric_rows: list[tuple[str, str, float | None]] = []
    ranked = {q: ranked_ids(row, settings.level) for q, row in zip(query_ids, rows, strict=True)}
    replay_values = _ranking(rows, batch.judgments, settings, ranked, collapse=False)
    _extend(metric_rows, query_ids, replay_values)
    served_rows = {q: ids for q, ids in batch.served.items() if ids}
    if served_rows:
        served_queries = [q for q in query_ids if q in served_rows]
        served_values = _ranking([r for r in rows if r.record.query_id in served_rows],
                                 batch.judgments, settings, served_rows, only="recall")
        position = {q: i for i, q in enumerate(query_ids)}
        for k in settings.k:
            served = served_values[metric_name("recall", k)]
            replayed_recall = replay_values[metric_name("recall", k)]
            delta = [replayed_recall[position[q]] - served[i]
                     for i, q in enumerate(served_queries)]
            _extend(metric_rows, served_queries, {metric_name("served_recall", k): served,
                                                  metric_name("recall_delta", k): delta})
    overlap = {k: metric_name("overlap", k) for k in settings.k}
    scatter_judged, rank_biased = metric_name("scatter_judged"), metric_name("rbo")
    for row in rows:
        query_id = row.record.query_id
        relevant = sum(grade >= 1 for grade in batch.judgments.get(query_id, {}).values())
        if relevant:  # with judgments, scatter is the relevant documents the answer needs
            metric_rows.append((query_id, scatter_judged, float(relevant)))
        served = batch.served.get(query_id)
        if served:
            replayed = ranked[query_id]
            for k in settings.k:
                metric_rows.append((query_id, overlap[k], overlap_at_k(served, replayed, k)))
            metric_rows.append((query_id, rank_biased, rbo(served, replayed)))
        trace = batch.traces.get(query_id)
        if trace is not None:
            metric_rows.extend((query_id, name, value)
                               for name, value in answer_metrics(trace, settings.k).items())
    silver = _silver_recall(rows, batch.traces, settings)
    _extend(metric_rows, [q for q in query_ids if q in batch.traces], silver)
    return {
        "query_results": _query_results(run_id, batch),
        "hits": _hits(run_id, batch),
        "judgments": _with_run(run_id, pa.table({
            "query_id": [q for q in every_id for _ in batch.judgments.get(q, {})],
            "doc_id": [d for q in every_id for d in batch.judgments.get(q, {})],
            "grade": pa.array([g for q in every_id for g in batch.judgments.get(q, {})
                                   .values()], pa.int32()),
        })),
        "metrics": _with_run(run_id, pa.table({
            "query_id": [q for q, _, _ in metric_rows],
            "metric": [m for _, m, _ in metric_rows],
            "value": pa.array([_finite(v) for _, _, v in metric_rows], pa.float64()),
        })),
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


def _ranking(rows: list[Replayed], judgments: dict[str, dict[str, int]],
             settings: AuditSettings, ranked: dict[str, list[str]], only: str | None = None,
             collapse: bool = True) -> dict[str, Any]:
    query_ids = [row.record.query_id for row in rows]
    hit_q = [q for q in query_ids for _ in ranked.get(q, [])]
    hit_ids = [i for q in query_ids for i in ranked.get(q, [])]
    qrels = Qrels.from_rows([(q, d, g) for q in query_ids for d, g in judgments.get(q, {}).items()])
    metrics = metrics_for(settings.k, [only]) if only else metrics_for(settings.k)
    return evaluate(query_ids, hit_q, hit_ids, qrels, metrics, collapse=collapse)


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
    values = evaluate(
        query_ids,
        [q for q in query_ids for _ in ranked[q]],
        [d for q in query_ids for d in ranked[q]],
        Qrels.from_rows([(q, d, 1) for q in query_ids for d in evidence[q]]),
        recall,
    )
    return {metric_name("silver_recall", m.k): values[format_metric(m)] for m in recall}


def _extend(out: list, query_ids: list[str], values: dict[str, Any]) -> None:
    for name, column in values.items():
        out.extend((q, name, v) for q, v in zip(query_ids, list(column), strict=True))


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def _query_results(run_id: str, batch: BatchResult) -> pa.Table:
    return pa.Table.from_pylist([
        {
            "run_id": run_id,
            "seq": batch.first_seq + offset,
            "query_id": row.record.query_id,
            "query": row.record.query,
            "status": row.status,
            "error": row.error,
            "n_hits": len(row.hits),
            "replay_latency_ms": row.replay_latency_ms,
            "took_ms": row.took_ms,
            "logged_at": row.record.logged_at,
            "served_latency_ms": row.record.served_latency_ms,
            "served": _json([i.model_dump() for i in row.record.served or []] or None),
            "answer": row.record.answer,
            "cited": _json(row.record.cited),
            "metadata": _json(row.record.metadata or None),
        }
        for offset, row in enumerate(batch.rows)
    ])


def _hits(run_id: str, batch: BatchResult) -> pa.Table:
    columns: dict[str, list[Any]] = {k: [] for k in ("seq", "query_id", "rank", "chunk_id",
                                                      "doc_id", "score")}
    for offset, row in enumerate(batch.rows):
        for hit in row.hits:
            columns["seq"].append(batch.first_seq + offset)
            columns["query_id"].append(row.record.query_id)
            columns["rank"].append(hit.rank)
            columns["chunk_id"].append(hit.chunk_id)
            columns["doc_id"].append(hit.doc_id)
            columns["score"].append(hit.score)
    return _with_run(run_id, pa.table(columns))


def trace_tables(run_id: str, batch: BatchResult) -> dict[str, pa.Table]:
    sentences, support, scatter = [], [], []
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
        for level, cover in (("doc", trace.doc_cover), ("chunk", trace.chunk_cover)):
            scatter.append({"run_id": run_id, "query_id": query_id, "level": level,
                            "size": cover.size, "approx": cover.approx,
                            "sources": json.dumps(list(cover.sources))})
    diagnoses = [{"run_id": run_id, "query_id": d.query_id, "cause": d.cause,
                  "target_id": d.target_id, "evidence": json.dumps(d.evidence, default=str)}
                 for d in batch.diagnoses]
    return {name: pa.Table.from_pylist(rows) for name, rows in (
        ("sentences", sentences), ("support", support), ("scatter", scatter),
        ("diagnoses", diagnoses), ("passages", list(passages.values())))}


def _with_run(run_id: str, table: pa.Table) -> pa.Table:
    return table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))


def quarantine_table(run_id: str, entries: list[QuarantineEntry]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"run_id": run_id, "source": e.source, "line": e.line, "field": e.field,
          "reason": e.reason, "raw": e.raw} for e in entries],
        schema=pa.schema([("run_id", pa.string()), ("source", pa.string()),
                          ("line", pa.int64()), ("field", pa.string()),
                          ("reason", pa.string()), ("raw", pa.string())]),
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)
