"""Interchange with other tools: TREC run and qrels files out of the store, so any
trec_eval-compatible tool can check our numbers. (OpenInference spans are read as a log by
``auditor.spans``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.errors import AuditorError
from auditor.store import Store


class ExportError(AuditorError):
    """A run cannot be written in TREC format (an id holds whitespace)."""


# TREC export -----------------------------------------------------------------------------
# trec_eval ignores the rank column: it sorts by score (descending), ties by doc id
# (descending), and holds scores as C floats. A query whose scores are not strictly
# decreasing in our rank order at single precision gets scores derived from rank instead
# (n - rank + 1), so any TREC tool sees our ranking; other queries keep their hit scores.
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
SELECT query_id, 0, doc_id, relevance FROM judgments WHERE run_id = {run}
ORDER BY query_id, doc_id
"""
_SPACED_SQL = """
SELECT query_id, {id} FROM {table} WHERE run_id = {run}
  AND (regexp_matches(query_id, '\\s') OR regexp_matches({id}, '\\s')) LIMIT 1
"""
_COPY = "COPY ({query}) TO {path} (FORMAT csv, DELIMITER ' ', HEADER false, QUOTE '')"


def export_trec(
    store: Store,
    run_id: str,
    run_path: Path,
    qrels_path: Path | None = None,
    *,
    tag: str | None = None,
) -> tuple[int, int]:
    """Write a stored run as a TREC run file (``qid Q0 docid rank score tag``) and its
    judgments as TREC qrels (``qid 0 docid rel``); returns (run lines, qrels lines).

    Ids are at the run's own level, as its judgments are: at ``doc`` each document is written
    once, at its best rank, and ranks are renumbered 1..n. ``tag`` defaults to the run id.
    Scores are the hit scores unless a query's scores tie (see the comment above ``_RUN_SQL``).
    """
    tag = tag or run_id
    if not tag or any(ch.isspace() for ch in tag):
        raise ExportError(f"TREC run tag {tag!r} must be one word")
    column = "doc_id" if store.run(run_id)["level"] == "doc" else "chunk_id"
    run = _literal(run_id)
    checks = [("hits", column)] + ([("judgments", "doc_id")] if qrels_path else [])
    with store.connect(read_only=True) as con:
        for table, id_column in checks:
            spaced = con.execute(_SPACED_SQL.format(id=id_column, table=table, run=run)
                                 ).fetchone()
            if spaced is not None:
                raise ExportError(f"run {run_id}: query {spaced[0]!r} / id {spaced[1]!r} in "
                                  f"its {table} holds whitespace, which a TREC file cannot "
                                  "represent")
        query = _RUN_SQL.format(id=column, run=run, tag=_literal(tag))
        written = _copy(con, query, run_path)
        judged = _copy(con, _QRELS_SQL.format(run=run), qrels_path) if qrels_path else 0
    return written, judged


def _copy(con: Any, query: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    row = con.execute(_COPY.format(query=query, path=_literal(str(path)))).fetchone()
    return int(row[0]) if row else 0


def _literal(text: str) -> str:
    """A SQL string literal (COPY takes no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"
