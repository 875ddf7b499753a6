"""One audit run: log → replay → metrics → store, streaming batch by batch.

Memory stays bounded by one batch (plus the judgments): each batch is replayed, scored
and written before the next is read.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from auditor import __version__
from auditor.backends import Backend, open_backend
from auditor.config import AuditSettings
from auditor.logs import LoadCounts, read_log, read_qrels
from auditor.metrics import Qrels, evaluate, metrics_for
from auditor.records import LogRecord, QuarantineEntry
from auditor.replay import Replayed, Replayer, batched
from auditor.store import RunStatus, Store

Progress = Callable[[int], None]


@dataclass
class RunCounts:
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    blank: int = 0
    qrels_quarantined: int = 0
    replayed: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {"ok": 0, "empty": 0, "error": 0})


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def load_judgments(settings: AuditSettings) -> tuple[dict[str, dict[str, int]], list]:
    """Judgments by query from the qrels file, and its quarantined lines."""
    by_query: dict[str, dict[str, int]] = {}
    bad: list[QuarantineEntry] = []
    if settings.qrels is None:
        return by_query, bad
    for item in read_qrels(settings.qrels):
        if isinstance(item, QuarantineEntry):
            bad.append(item)
        else:
            by_query.setdefault(item.query_id, {})[item.doc_id] = item.relevance
    return by_query, bad


def run_audit(
    settings: AuditSettings,
    progress: Progress | None = None,
    backend: Backend | None = None,
) -> tuple[str, RunStatus]:
    """Audit ``settings.log``; returns the run id and its final status."""
    if settings.log is None:
        from auditor.config import ConfigError

        raise ConfigError("no query log given: set `log` in audit.toml or pass --log")
    judgments, bad_qrels = load_judgments(settings)
    backend = backend or open_backend(settings)
    store = Store(settings.store)
    run_id = new_run_id()
    store.create_run(
        run_id,
        backend=backend.name,
        mode=settings.mode,
        level=settings.level,
        config=settings.snapshot(),
        fingerprint=backend.fingerprint().as_dict(),
        code_version=__version__,
    )
    counts = RunCounts(qrels_quarantined=len(bad_qrels))
    store.append({"quarantine": _quarantine_table(run_id, bad_qrels)})
    load = LoadCounts()
    replayer = Replayer(backend, settings.mode, settings.depth)
    status: RunStatus = "failed"
    reason: str | None = None
    try:
        seq = 0
        quarantined: list[QuarantineEntry] = []
        accepted = _accepted(read_log(settings.log, load), quarantined)
        for batch in batched(accepted, settings.batch_size):
            rows = replayer.replay(batch)
            tables = _batch_tables(run_id, seq, rows, judgments, settings)
            tables["quarantine"] = _quarantine_table(run_id, quarantined)
            store.append(tables)
            quarantined.clear()
            seq += len(rows)
            for row in rows:
                counts.by_status[row.status] += 1
            counts.replayed = seq
            if progress:
                progress(len(rows))
        store.append({"quarantine": _quarantine_table(run_id, quarantined)})
        status, reason = _final_status(counts, replayer.abort_reason)
    except KeyboardInterrupt:
        status, reason = "partial", "interrupted"
        raise
    except BaseException as exc:
        status, reason = ("partial" if counts.replayed else "failed"), f"stopped by error: {exc}"
        raise
    finally:
        counts.read, counts.accepted = load.read, load.accepted
        counts.quarantined, counts.blank = load.quarantined, load.blank
        store.finish_run(run_id, status, reason, asdict(counts))
    return run_id, status


def _accepted(items, quarantined: list[QuarantineEntry]):
    """Pass records through; set quarantine entries aside to be written with the batch."""
    for item in items:
        if isinstance(item, QuarantineEntry):
            quarantined.append(item)
        else:
            yield item


def _final_status(counts: RunCounts, abort_reason: str | None) -> tuple[RunStatus, str | None]:
    errors = counts.by_status["error"]
    if counts.replayed and errors == counts.replayed:
        return "failed", abort_reason or "every query failed"
    if abort_reason:
        return "partial", abort_reason
    if errors:
        return "partial", f"{errors} of {counts.replayed} queries failed"
    return "complete", None


def _judgments_for(record: LogRecord, judgments: dict[str, dict[str, int]]) -> dict[str, int]:
    """The qrels file's judgments, overlaid with the record's inline ``relevant``."""
    merged = dict(judgments.get(record.query_id, {}))
    merged.update(record.relevant or {})
    return merged


def _batch_tables(
    run_id: str,
    first_seq: int,
    rows: list[Replayed],
    judgments: dict[str, dict[str, int]],
    settings: AuditSettings,
) -> dict[str, pa.Table]:
    query_rows: list[dict[str, Any]] = []
    hit_cols: dict[str, list[Any]] = {
        "seq": [], "query_id": [], "rank": [], "chunk_id": [], "doc_id": [], "score": []
    }
    qrel_rows: list[tuple[str, str, int]] = []
    for offset, row in enumerate(rows):
        record = row.record
        seq = first_seq + offset
        query_rows.append(
            {
                "run_id": run_id,
                "seq": seq,
                "query_id": record.query_id,
                "query": record.query,
                "status": row.status,
                "error": row.error,
                "n_hits": len(row.hits),
                "latency_ms": row.latency_ms,
                "took_ms": row.took_ms,
                "logged_at": record.timestamp,
                "served_latency_ms": record.latency_ms,
                "served": _json([i.model_dump() for i in record.retrieved or []] or None),
                "answer": record.answer,
                "cited": _json(record.cited),
                "metadata": _json(record.metadata or None),
            }
        )
        for hit in row.hits:
            hit_cols["seq"].append(seq)
            hit_cols["query_id"].append(record.query_id)
            hit_cols["rank"].append(hit.rank)
            hit_cols["chunk_id"].append(hit.chunk_id)
            hit_cols["doc_id"].append(hit.doc_id)
            hit_cols["score"].append(hit.score)
        merged = _judgments_for(record, judgments)
        qrel_rows.extend((record.query_id, doc, grade) for doc, grade in merged.items())
    query_ids = [row.record.query_id for row in rows]
    ids = hit_cols["doc_id"] if settings.level == "doc" else hit_cols["chunk_id"]
    values = evaluate(
        query_ids, hit_cols["query_id"], ids, Qrels.from_rows(qrel_rows), metrics_for(settings.k)
    )
    metric_cols: dict[str, list[Any]] = {"query_id": [], "metric": [], "value": []}
    for name, column in values.items():
        metric_cols["query_id"].extend(query_ids)
        metric_cols["metric"].extend([name] * len(query_ids))
        metric_cols["value"].extend(None if v != v else float(v) for v in column.tolist())
    return {
        "query_results": pa.Table.from_pylist(query_rows),
        "hits": _with_run(run_id, pa.table(hit_cols)),
        "judgments": _with_run(
            run_id,
            pa.table(
                {
                    "query_id": [q for q, _, _ in qrel_rows],
                    "doc_id": [d for _, d, _ in qrel_rows],
                    "relevance": pa.array([r for _, _, r in qrel_rows], pa.int32()),
                }
            ),
        ),
        "metrics": _with_run(run_id, pa.table(metric_cols)),
    }


def _with_run(run_id: str, table: pa.Table) -> pa.Table:
    return table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))


def _quarantine_table(run_id: str, entries: list[QuarantineEntry]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"run_id": run_id, "source": e.source, "line": e.line, "field": e.field,
             "reason": e.reason, "raw": e.raw}
            for e in entries
        ],
        schema=pa.schema(
            [("run_id", pa.string()), ("source", pa.string()), ("line", pa.int64()),
             ("field", pa.string()), ("reason", pa.string()), ("raw", pa.string())]
        ),
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)
