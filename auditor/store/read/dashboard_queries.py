"""Per-query reads: the explorer's filtered, sorted page of queries and one query's detail
(targets and where each ranks, the documents and texts of chunks, traced answers).

The explorer pivots only the handful of metrics it shows and pages in SQL (``LIMIT`` /
``OFFSET`` with the total from a window count), so a 100k-query run costs one scan per page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from auditor.cases import DRIFT
from auditor.store.read.dashboard_frames import frame, query, reading
from auditor.store.read.dashboard_metrics import metric_sql_name
from auditor.store.read.dashboard_segments import Segment

SortOrder = Literal["ASC", "DESC"]
LATENCIES = ("replay_latency_ms", "served_latency_ms")


def explorer_metrics(k: int) -> list[str]:
    return [f"recall@{k}", f"ndcg@{k}", f"mrr@{k}", f"answer_coverage@{k}", "scatter_docs"]


def sortable_columns(k: int) -> list[str]:
    return ["query_id", *explorer_metrics(k), *LATENCIES, "logged_at"]


@dataclass(frozen=True)
class QueryFilter:
    """What the explorer's widgets ask for, beyond the segment."""

    search: str = ""  # part of the query text, or an exact query id
    causes: tuple[str, ...] = ()  # any of these failure causes
    drift: Literal["any", "drifted", "not drifted"] = "any"  # drift is apart from the causes
    statuses: tuple[str, ...] = ()  # replay status: ok, empty, error
    max_recall: float | None = None  # recall@k at most this (None: any, including undefined)
    sort: str = "query_id"
    order: SortOrder = "ASC"


def _explorer(run_id: str, k: int, segment: Segment, flt: QueryFilter
              ) -> tuple[str, dict[str, Any]]:
    """The explorer's rows as SQL (one row per query) and its parameters."""
    metrics = explorer_metrics(k)
    pivots = ", ".join(f"max(value) FILTER (WHERE metric = $m{i}) AS {metric_sql_name(name)}"
                       for i, name in enumerate(metrics))
    where, params = segment.where()
    params |= {f"m{i}": name for i, name in enumerate(metrics)}
    params |= {"run": run_id, "metrics": metrics, "drift": DRIFT}
    clauses = [where]
    if flt.search:
        clauses.append("(contains(lower(q.query), lower($search)) OR q.query_id = $search)")
        params["search"] = flt.search
    if flt.causes:
        clauses.append("list_has_any(c.cause_list, $causes)")
        params["causes"] = list(flt.causes)
    if flt.drift != "any":
        clauses.append(f"{'' if flt.drift == 'drifted' else 'NOT '}coalesce(c.drifted, FALSE)")
    if flt.statuses:
        clauses.append("list_contains($statuses, q.status)")
        params["statuses"] = list(flt.statuses)
    if flt.max_recall is not None:
        clauses.append(f"m.{metric_sql_name(metrics[0])} <= $max_recall")
        params["max_recall"] = flt.max_recall
    sql = f"""
        WITH c AS (SELECT query_id, bool_or(cause = $drift) AS drifted,
                          list(DISTINCT cause ORDER BY cause) FILTER (WHERE cause <> $drift)
                              AS cause_list
                   FROM diagnoses WHERE run_id = $run GROUP BY query_id),
        m AS (SELECT query_id, {pivots} FROM metrics
              WHERE run_id = $run AND list_contains($metrics, metric) GROUP BY query_id)
        SELECT q.query_id, q.query, array_to_string(c.cause_list, ', ') AS causes,
               coalesce(c.drifted, FALSE) AS drifted,
               m.* EXCLUDE (query_id), q.status, q.replay_latency_ms, q.served_latency_ms,
               q.logged_at
        FROM query_results q LEFT JOIN m USING (query_id) LEFT JOIN c USING (query_id)
        WHERE q.run_id = $run AND {" AND ".join(clauses)}"""
    return sql, params


def _order(k: int, flt: QueryFilter) -> str:
    column = flt.sort if flt.sort in sortable_columns(k) else "query_id"
    order = "DESC" if flt.order == "DESC" else "ASC"
    return f'ORDER BY "{column}" {order} NULLS LAST, query_id'


def query_page(path: Path | str, run_id: str, k: int, segment: Segment, flt: QueryFilter,
               page: int, size: int) -> tuple[pd.DataFrame, int]:
    """One page of the explorer's rows and the number of rows matching in all."""
    sql, params = _explorer(run_id, k, segment, flt)
    with reading(path) as con:
        df = query(con, f"SELECT *, count(*) OVER () AS total FROM ({sql}) {_order(k, flt)} "
                        "LIMIT $size OFFSET $offset",
                   params | {"size": size, "offset": max(page - 1, 0) * size})
        total = int(df["total"].iloc[0]) if len(df) else 0
        if not len(df) and page > 1:  # asked past the end: count what there is
            total = int(query(con, f"SELECT count(*) AS n FROM ({sql})", params)["n"].iloc[0])
    return df.drop(columns="total"), total


def query_rows(path: Path | str, run_id: str, k: int, segment: Segment, flt: QueryFilter
               ) -> pd.DataFrame:
    """Every matching row of the explorer, in its order (the CSV download)."""
    sql, params = _explorer(run_id, k, segment, flt)
    return frame(path, f"{sql} {_order(k, flt)}", params)


# one query -----------------------------------------------------------------------------
def targets(path: Path | str, run_id: str, query_id: str, level: str) -> pd.DataFrame:
    """Judged-relevant documents of the query (grade >= 1; without any, the answer's silver
    evidence, as the audit picks its targets) with the rank replay gives each at the run's
    level, its score and chunk."""
    key = "doc_id" if level == "doc" else "chunk_id"
    return frame(path, f"""
        WITH h AS (SELECT {key} AS id, min(rank) AS chunk_rank, max(score) AS score,
                          arg_min(chunk_id, rank) AS chunk_id
                   FROM hits WHERE run_id = $run AND query_id = $q GROUP BY {key}),
        r AS (SELECT *, row_number() OVER (ORDER BY chunk_rank) AS rank FROM h),
        judged AS (SELECT doc_id AS id, grade, FALSE AS silver FROM judgments
                   WHERE run_id = $run AND query_id = $q AND grade >= 1),
        silver AS (SELECT DISTINCT {"best_doc_id" if level == "doc" else "best_chunk_id"} AS id,
                          NULL::INTEGER AS grade, TRUE AS silver
                   FROM sentences WHERE run_id = $run AND query_id = $q
                     AND status IN ('supported', 'retrievable_not_retrieved')
                     AND best_doc_id IS NOT NULL),
        t AS (SELECT * FROM judged UNION ALL
              SELECT * FROM silver WHERE NOT EXISTS (SELECT 1 FROM judged))
        SELECT t.id, t.grade, t.silver, r.rank, r.score, r.chunk_id
        FROM t LEFT JOIN r USING (id)
        ORDER BY t.grade DESC NULLS LAST, r.rank NULLS LAST, t.id""",
                 {"run": run_id, "q": query_id})


def documents_of(path: Path | str, run_id: str, chunk_ids: tuple[str, ...]) -> dict[str, str]:
    """The document of each chunk id that the run's hits or stored passages know."""
    if not chunk_ids:
        return {}
    df = frame(path, """
        SELECT chunk_id, any_value(doc_id) AS doc_id FROM (
            SELECT chunk_id, doc_id FROM hits WHERE run_id = $run
            AND list_contains($ids, chunk_id) UNION ALL
            SELECT chunk_id, doc_id FROM passages WHERE run_id = $run
            AND list_contains($ids, chunk_id)) GROUP BY chunk_id""",
               {"run": run_id, "ids": list(chunk_ids)})
    return dict(zip(df["chunk_id"], df["doc_id"], strict=True))


def titles(path: Path | str, run_id: str, doc_ids: tuple[str, ...]) -> dict[str, str]:
    """Document titles recorded by the corpus pass of the run."""
    if not doc_ids:
        return {}
    df = frame(path, "SELECT doc_id, title FROM corpus_coverage WHERE run_id = $run AND "
                     "list_contains($ids, doc_id)", {"run": run_id, "ids": list(doc_ids)})
    return {row.doc_id: row.title for row in df.itertuples() if row.title}


def passages(path: Path | str, run_id: str, chunk_ids: tuple[str, ...]
             ) -> dict[str, dict[str, str]]:
    """Document, title and text of the chunks the run stored for its traces (none for a run
    written before passages were kept)."""
    stored = frame(path, "SELECT chunk_id, doc_id, title, text FROM passages WHERE "
                         "run_id = $run AND list_contains($ids, chunk_id)",
                   {"run": run_id, "ids": list(chunk_ids)})
    return {row.chunk_id: {"doc_id": row.doc_id, "title": row.title or "",
                           "text": row.text or ""} for row in stored.itertuples()}


def indexed_texts(chunk_file: Path, chunk_ids: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Document, title and text of chunks from an embedded index's ``chunks.jsonl`` (read by
    an in-memory DuckDB, never the store); none if the file cannot be read."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT chunk_id, doc_id, title, text FROM read_json($path, "
            "format = 'newline_delimited', columns = {chunk_id: 'VARCHAR', doc_id: 'VARCHAR', "
            "title: 'VARCHAR', text: 'VARCHAR'}) WHERE list_contains($ids, chunk_id)",
            {"path": str(chunk_file), "ids": list(chunk_ids)}).fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return {cid: {"doc_id": doc, "title": title or "", "text": text or ""}
            for cid, doc, title, text in rows}


def traced_queries(path: Path | str, run_id: str, limit: int = 20) -> pd.DataFrame:
    """Queries with a traced answer, those with the most unsupported sentences first."""
    return frame(path, """
        SELECT s.query_id, any_value(q.query) AS query, count(*) AS sentences,
               count(*) FILTER (WHERE s.status = 'supported') AS supported,
               count(*) FILTER (WHERE s.status = 'retrievable_not_retrieved')
                   AS retrievable_not_retrieved,
               count(*) FILTER (WHERE s.status = 'contradicted') AS contradicted,
               count(*) FILTER (WHERE s.status = 'ungrounded') AS ungrounded
        FROM sentences s JOIN query_results q ON q.run_id = s.run_id AND q.query_id = s.query_id
        WHERE s.run_id = $run GROUP BY s.query_id
        ORDER BY count(*) FILTER (WHERE s.status <> 'supported') DESC, s.query_id LIMIT $lim""",
                 {"run": run_id, "lim": limit})
