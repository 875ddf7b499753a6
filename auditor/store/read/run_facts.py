"""Small reads about one run that the audit, nightly, corpus, report and CLI steps need:
the log's time span, judged coverage, per-document hit counts, scatter sizes, the query
worth tracing, and the runs listing's extra columns."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.store.connection import Connection

# Hits per slice of the corpus pass's scan (``doc_hits``): 10,000 queries at depth 100. Their
# (query, document) groups fit in 16 MB of DuckDB memory on the SciFact ids (2M hits
# needed 32 MB), a quarter of ``SCAN_MEMORY``: longer ids have room.
SCAN_ROWS = 1_000_000


@dataclass(frozen=True)
class LogSpan:
    first_logged_at: str | None
    last_logged_at: str | None


@dataclass(frozen=True)
class JudgedCoverage:
    replayed: int  # distinct queries replayed
    judged: int  # of them, with at least one relevant judgment


@dataclass(frozen=True)
class DocHits:
    """How one document fared across a run's stored hits."""

    at_k: int  # queries that list it within k
    at_depth: int  # queries that list it at all
    best_rank: int


@dataclass(frozen=True)
class ScatterSize:
    size: int | None  # documents an answer needs (None: not coverable)
    queries: int
    approx: int  # of them, sized by the greedy approximation


@dataclass(frozen=True)
class RunExtras:
    gate_status: str | None
    log: str | None


def log_span(store: Connection, run_id: str) -> LogSpan:
    with store.connect(read_only=True) as con:
        first, last = con.execute(
            "SELECT min(logged_at), max(logged_at) FROM query_results WHERE run_id = ?",
            [run_id]).fetchone()
    return LogSpan(first, last)


def judged_coverage(store: Connection, run_id: str) -> JudgedCoverage:
    with store.connect(read_only=True) as con:
        replayed, judged = con.execute(
            "SELECT (SELECT count(DISTINCT query_id) FROM query_results WHERE run_id = $1), "
            "(SELECT count(DISTINCT query_id) FROM judgments WHERE run_id = $1 "
            "AND grade >= 1)", [run_id]).fetchone()
    return JudgedCoverage(replayed, judged)


def doc_hits(store: Connection, run_id: str, k: int,
             slice_rows: int = SCAN_ROWS) -> dict[str, DocHits]:
    """Every stored hit of the run, per document: read by query position (an integer, not
    the query id string) in slices of ≈``slice_rows`` hits, each within a bounded memory
    budget that spills, and summed here: flat in the run's size. One scan over a 1M-query
    run (100M hits) ran out of DuckDB's budget: grouping by (query, document) holds a group
    per hit, which a slice keeps to its own hits (a slice's rows are found by the row
    groups' min/max of ``seq``: a run's hits are appended in query order, nearly so under
    Ray)."""
    found: dict[str, list[int]] = {}
    with store.bounded() as con:
        low, high, rows = con.execute(
            "SELECT min(seq), max(seq), count(*) FROM hits WHERE run_id = ?", [run_id]
        ).fetchone()
        if not rows:
            return {}
        step = max(1, -(-(high - low + 1) * slice_rows // rows))  # queries per slice
        for start in range(low, high + 1, step):
            for doc, at_k, at_depth, best in con.execute(
                """
                WITH best AS (
                    SELECT seq, doc_id, min(rank) AS rank FROM hits
                    WHERE run_id = ? AND seq >= ? AND seq < ? GROUP BY seq, doc_id
                )
                SELECT doc_id, count(*) FILTER (WHERE rank <= ?) AS at_k,
                       count(*) AS at_depth, min(rank) AS best_rank
                FROM best GROUP BY doc_id
                """,
                [run_id, start, start + step, k],
            ).fetchall():
                seen = found.get(doc)
                if seen is None:
                    found[doc] = [at_k, at_depth, best]
                else:
                    seen[0] += at_k
                    seen[1] += at_depth
                    seen[2] = min(seen[2], best)
    return {doc: DocHits(*counts) for doc, counts in found.items()}


def scatter_sizes(store: Connection, run_id: str) -> list[ScatterSize]:
    """Queries per doc-level set-cover size, smallest first (not coverable last)."""
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT size, count(*) AS queries, count(*) FILTER (WHERE approx) AS approx "
            "FROM scatter WHERE run_id = ? AND level = 'doc' GROUP BY size "
            "ORDER BY size NULLS LAST", [run_id]).fetchall()
    return [ScatterSize(*row) for row in rows]


def worst_diagnosed_query(store: Connection, run_id: str, metric: str, skip_cause: str,
                          last_cause: str) -> str | None:
    """The query with a cause other than ``skip_cause`` that ranks worst on ``metric``,
    queries whose only causes are ``last_cause`` coming last; None when there is none."""
    with store.connect(read_only=True) as con:
        row = con.execute(
            "SELECT d.query_id FROM diagnoses d LEFT JOIN metrics m ON m.run_id = d.run_id "
            "AND m.query_id = d.query_id AND m.metric = $metric "
            "WHERE d.run_id = $run AND d.cause <> $drift GROUP BY d.query_id "
            "ORDER BY bool_and(d.cause = $unsupported), min(m.value) NULLS LAST, "
            "count(DISTINCT d.cause) DESC, d.query_id LIMIT 1",
            {"metric": metric, "run": run_id, "drift": skip_cause, "unsupported": last_cause},
        ).fetchone()
    return None if row is None else row[0]


def run_extras(store: Connection) -> dict[str, RunExtras]:
    """Each run's verdict and log file, which the runs listing shows beside its columns."""
    with store.connect(read_only=True) as con:
        found = con.execute(
            "SELECT run_id, gate_status, json_extract_string(config, '$.log') FROM runs"
        ).fetchall()
    return {run_id: RunExtras(status, log) for run_id, status, log in found}
