"""A stored run as TREC run and qrels files (``COPY`` straight out of DuckDB).

trec_eval ignores the rank column: it sorts by score (descending), ties by doc id
(descending), and holds scores as C floats. A query whose scores are not strictly decreasing
in our rank order at single precision gets scores derived from rank instead (n - rank + 1),
so any TREC tool sees our ranking; other queries keep their hit scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from auditor.store.connection import Connection

_RUN_SQL = """
WITH firsts AS (
    SELECT seq, query_id, {id} AS doc_id, rank, score FROM hits WHERE run_id = {run}
    QUALIFY row_number() OVER (PARTITION BY seq, {id} ORDER BY rank) = 1
), renumbered AS (
    SELECT seq, query_id, doc_id, score,
           row_number() OVER (PARTITION BY seq ORDER BY rank) AS new_rank,
           count(*) OVER (PARTITION BY seq) AS n,
           coalesce(score::FLOAT < lag(score::FLOAT) OVER (PARTITION BY seq ORDER BY rank), true)
               AS below
    FROM firsts
), checked AS (
    SELECT *, bool_and(below) OVER (PARTITION BY seq) AS strict FROM renumbered
)
SELECT query_id, 'Q0', doc_id, new_rank,
       CASE WHEN strict THEN score ELSE (n - new_rank + 1)::DOUBLE END, {tag}
FROM checked ORDER BY seq, new_rank
"""
_QRELS_SQL = """
SELECT query_id, 0, doc_id, grade FROM judgments WHERE run_id = {run}
ORDER BY query_id, doc_id
"""
_SPACED_SQL = """
SELECT query_id, {id} FROM {table} WHERE run_id = {run}
  AND (regexp_matches(query_id, '\\s') OR regexp_matches({id}, '\\s')) LIMIT 1
"""
_COPY = "COPY ({query}) TO {path} (FORMAT csv, DELIMITER ' ', HEADER false, QUOTE '')"


@dataclass(frozen=True)
class SpacedId:
    """An id a TREC file cannot hold (it contains whitespace)."""

    table: str
    query_id: str
    id: str


def first_spaced_id(store: Connection, run_id: str, column: str, with_qrels: bool
                    ) -> SpacedId | None:
    """The first query or ``column`` id of the run's hits (and judgments) with whitespace."""
    checks = [("hits", column)] + ([("judgments", "doc_id")] if with_qrels else [])
    with store.connect(read_only=True) as con:
        for table, id_column in checks:
            spaced = con.execute(_SPACED_SQL.format(id=id_column, table=table,
                                                    run=_literal(run_id))).fetchone()
            if spaced is not None:
                return SpacedId(table, spaced[0], spaced[1])
    return None


def write_trec(store: Connection, run_id: str, column: str, tag: str, run_path: Path,
               qrels_path: Path | None) -> tuple[int, int]:
    """Write the run file (ids from ``column``) and, given a path, the qrels; returns the
    lines written to each."""
    run = _literal(run_id)
    with store.connect(read_only=True) as con:
        written = _copy(con, _RUN_SQL.format(id=column, run=run, tag=_literal(tag)), run_path)
        judged = _copy(con, _QRELS_SQL.format(run=run), qrels_path) if qrels_path else 0
    return written, judged


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    row = con.execute(_COPY.format(query=query, path=_literal(str(path)))).fetchone()
    return int(row[0]) if row else 0


def _literal(text: str) -> str:
    """A SQL string literal (COPY takes no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"
