"""The judging page's queue: the (query, document) pairs a judgment list version does not
judge yet, pooled and ordered by their expected impact on the metrics the gates use.

Pool. The union of the top ``k`` of every *ranked list* of the run's queries: the run's own
hits; the rankings its ablations replayed for the queries it missed (``ablation:bm25``,
``ablation:dense``, ``ablation:exact``, ``ablation:unfiltered``, stored to ``diagnose_k``);
and the hits of the latest other-mode run of the same log at the same level stored next to
it (e.g. a ``dense`` run beside a ``bm25`` one), joined by query id; plus the query's silver
evidence (the best-supporting id of each grounded answer sentence), ranked or not. A pair
the list judges (any source) is not in the queue.

Order. ``impact = discount × (1 + gates + silver + disagree)``, highest first (ties: best
rank, then log order):

- ``discount`` = 1 / log2(rank + 1) for the pair's best rank in any pooled list (what one
  grade there moves nDCG@k); silver evidence outside every top k counts as rank k + 1.
- ``gates`` = the number of the run's gate metrics on which the query is under pressure:
  its value is undefined (no judged relevant item yet, so it is not averaged in), within
  ``near`` of a ``min``/``max`` threshold or on the wrong side of it, or below the baseline
  run's value for a ``max_drop`` gate.
- ``silver`` = 1 when the id is the query's answer evidence.
- ``disagree`` = 1 when some but not all of the query's pooled lists hold the pair in
  their top k (e.g. bm25 finds it, dense does not, or only an ablation does).
"""

from __future__ import annotations

import pyarrow as pa

from auditor.store.connection import Connection

NEAR = 0.1  # a per-query value this close to a min/max gate threshold is under pressure

_QUEUE = """
WITH me AS (
    SELECT run_id, mode, level, config->>'log' AS log, baseline_run_id FROM runs
    WHERE run_id = $run
), lists AS (  -- the run, and the latest run of each other mode over the same log
    SELECT run_id, mode FROM me
    UNION ALL
    SELECT run_id, mode FROM (
        SELECT r.run_id, r.mode, row_number() OVER (
            PARTITION BY r.mode ORDER BY r.started_at DESC) AS n
        FROM runs r, me
        WHERE r.run_id <> me.run_id AND r.mode <> me.mode AND r.level = me.level
          AND r.config->>'log' = me.log)
    WHERE n = 1
), asked AS (
    SELECT query_id, min(seq) AS seq FROM query_results
    WHERE run_id = $run AND status <> 'error' GROUP BY query_id
), distinct_hits AS (
    SELECT l.mode, h.run_id, h.seq, h.query_id, h.{column} AS id, min(h.rank) AS best
    FROM lists l JOIN hits h USING (run_id) JOIN asked a USING (query_id)
    GROUP BY ALL
), ablated AS (  -- the run's ablation rankings of the queries it missed
    SELECT 'ablation:' || x.mode AS mode, x.query_id, x.{column} AS id, min(x.rank) AS best
    FROM ablation_hits x JOIN asked a USING (query_id)
    WHERE x.run_id = $run GROUP BY ALL
), ranked AS (
    SELECT mode, query_id, id, row_number() OVER (
        PARTITION BY run_id, seq ORDER BY best) AS rank
    FROM distinct_hits
    UNION ALL
    SELECT mode, query_id, id, row_number() OVER (
        PARTITION BY mode, query_id ORDER BY best, id) AS rank
    FROM ablated
), listed AS (  -- how many lists rank something for each query
    SELECT query_id, count(DISTINCT mode) AS lists FROM ranked GROUP BY query_id
), top AS (
    SELECT query_id, id, min(rank) AS rank, list(DISTINCT mode ORDER BY mode) AS modes
    FROM ranked WHERE rank <= $k GROUP BY query_id, id
), silver AS (
    SELECT DISTINCT s.query_id, s.best_{column} AS id FROM sentences s JOIN asked USING (query_id)
    WHERE s.run_id = $run AND s.status IN ('supported', 'retrievable_not_retrieved')
      AND s.best_{column} IS NOT NULL
), gate_metrics AS (
    SELECT DISTINCT metric, kind, threshold FROM gates WHERE run_id = $run
), pressure AS (
    SELECT m.query_id, count(DISTINCT m.metric) AS gates
    FROM metrics m JOIN gate_metrics g USING (metric)
    LEFT JOIN metrics b ON b.run_id = (SELECT baseline_run_id FROM me)
         AND b.query_id = m.query_id AND b.metric = m.metric
    WHERE m.run_id = $run AND (
        m.value IS NULL
        OR (g.kind = 'min' AND m.value < g.threshold + $near)
        OR (g.kind = 'max' AND m.value > g.threshold - $near)
        OR (g.kind = 'max_drop' AND m.value < b.value))
    GROUP BY m.query_id
), candidates AS (
    SELECT coalesce(t.query_id, s.query_id) AS query_id, coalesce(t.id, s.id) AS id,
           t.rank, coalesce(t.modes, []) AS modes, s.id IS NOT NULL AS silver
    FROM top t FULL JOIN silver s ON s.query_id = t.query_id AND s.id = t.id
), scored AS (
    SELECT c.*, coalesce(p.gates, 0) AS gates,
           coalesce(len(c.modes) BETWEEN 1 AND l.lists - 1, false) AS disagree
    FROM candidates c LEFT JOIN pressure p USING (query_id) LEFT JOIN listed l USING (query_id)
), shown AS (
    SELECT {column} AS id, any_value(title) AS title, string_agg(text, ' … ') AS text
    FROM passages WHERE run_id = $run GROUP BY ALL
)
SELECT a.seq, c.query_id, q.query, q.answer, c.id, c.rank, c.modes, c.silver, c.gates,
       c.disagree,
       (1.0 / log2(coalesce(c.rank, $k + 1) + 1)) * (1 + c.gates + c.silver::INTEGER
                                                     + c.disagree::INTEGER) AS impact,
       s.title, s.text
FROM scored c JOIN asked a USING (query_id)
JOIN query_results q ON q.run_id = $run AND q.seq = a.seq
LEFT JOIN shown s USING (id)
WHERE NOT EXISTS (
    SELECT 1 FROM judgment_labels l WHERE l.list_name = $list AND l.version = $version
      AND l.query_id = c.query_id AND l.doc_id = c.id)
ORDER BY impact DESC, c.rank NULLS LAST, a.seq, c.id
LIMIT $limit
"""


def judging_queue(store: Connection, run_id: str, level: str, k: int, list_name: str,
                  version: int | None, limit: int = 200) -> pa.Table:
    """Unjudged pooled pairs of the run at its level, highest expected impact first (see
    the module docstring), at most ``limit``: seq, query_id, query, answer, id, rank (best
    in any pooled top k; null for silver evidence outside them), modes, silver, gates,
    disagree, impact, title, text."""
    column = "doc_id" if level == "doc" else "chunk_id"
    with store.connect(read_only=True) as con:
        return con.sql(_QUEUE.format(column=column), params={
            "run": run_id, "k": k, "list": list_name, "version": version or 0,
            "limit": limit, "near": NEAR}).to_arrow_table()


_CHUNKS = """
SELECT chunk_id FROM (
    SELECT chunk_id, min(rank) AS best FROM hits
    WHERE query_id = $query AND {column} = $id GROUP BY chunk_id
    UNION ALL
    SELECT chunk_id, min(rank) FROM ablation_hits
    WHERE run_id = $run AND query_id = $query AND {column} = $id GROUP BY chunk_id
    UNION ALL
    SELECT best_chunk_id, 1000000 FROM sentences
    WHERE run_id = $run AND query_id = $query AND best_{column} = $id
      AND best_chunk_id IS NOT NULL)
GROUP BY chunk_id ORDER BY min(best), chunk_id LIMIT $limit
"""


def pair_chunks(store: Connection, run_id: str, level: str, query_id: str, item: str,
                limit: int = 3) -> list[str]:
    """The chunks a queued pair stands for, best first: those any stored run ranked for the
    query under that id, then the run's silver evidence (what the page fetches the text
    of when the store holds none)."""
    column = "doc_id" if level == "doc" else "chunk_id"
    with store.connect(read_only=True) as con:
        rows = con.execute(_CHUNKS.format(column=column), {
            "run": run_id, "query": query_id, "id": item, "limit": limit}).fetchall()
    return [row[0] for row in rows]
