"""The judging page's queue: (query, document) pairs pooled from a run's top k that a
judgment list version does not judge yet, with what the page shows beside them."""

from __future__ import annotations

import pyarrow as pa

from auditor.store.connection import Connection

_QUEUE = """
WITH pooled AS (
    SELECT q.seq, q.query_id, q.query, q.answer, h.{column} AS id, min(h.rank) AS best
    FROM query_results q JOIN hits h USING (run_id, seq)
    WHERE q.run_id = $run AND q.status <> 'error'
    GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY seq ORDER BY best) AS rank FROM pooled
), shown AS (
    SELECT {column} AS id, any_value(title) AS title, string_agg(text, ' … ') AS text
    FROM passages WHERE run_id = $run GROUP BY ALL
)
SELECT r.seq, r.query_id, r.query, r.answer, r.id, r.rank, s.title, s.text
FROM ranked r LEFT JOIN shown s USING (id)
WHERE r.rank <= $k AND NOT EXISTS (
    SELECT 1 FROM judgment_labels l WHERE l.list_name = $list AND l.version = $version
      AND l.query_id = r.query_id AND l.doc_id = r.id)
ORDER BY r.rank, r.seq
LIMIT $limit
"""


def judging_queue(store: Connection, run_id: str, level: str, k: int, list_name: str,
                  version: int | None, limit: int = 200) -> pa.Table:
    """Unjudged pairs of the run's top ``k`` (at its level), best ranks first across queries
    (the pairs most metrics at k depend on), at most ``limit``."""
    column = "doc_id" if level == "doc" else "chunk_id"
    with store.connect(read_only=True) as con:
        return con.sql(_QUEUE.format(column=column), params={
            "run": run_id, "k": k, "list": list_name, "version": version or 0,
            "limit": limit}).to_arrow_table()
