"""The reads behind ``auditor compare``: two runs paired by query id on the shared queries.

Joins and per-query rankings run in DuckDB on one short read-only connection (temp tables);
the caller does the resampling in numpy on what :func:`read_pairs` returns, after the
connection is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from auditor.store.connection import Connection, StoreError

Runs = tuple[str, str]  # (baseline, current)
Con = duckdb.DuckDBPyConnection
RANK_CAP = 3  # drift reads hits down to rank 3k first


@dataclass(frozen=True)
class QueryChange:
    query_id: str
    query: str
    metric: str  # the compared metric that moved most for this query
    baseline: float
    current: float
    delta: float  # current - baseline
    causes_before: list[str] = field(default_factory=list)
    causes_after: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CauseChange:
    query_id: str
    cause: str
    target_id: str | None


@dataclass(frozen=True)
class CauseChanges:
    """(query, cause, target) in one run but not the other: the listed pairs, how many there
    are, and queries per cause over all of them."""

    listed: list[CauseChange]
    total: int
    per_cause: list[dict[str, object]]


@dataclass(frozen=True)
class Wanted:
    """What to compare: metric names, which of them are lower-is-better, and the knobs."""

    names: list[str]
    lower: list[bool]
    epsilon: float  # a query moved when a metric changed by more than this
    limit: int  # listed changes per kind
    k: int  # drift depth
    last_cause: str  # listed last among the cause changes (drift, not a failure)


@dataclass(frozen=True)
class PairedReads:
    """Everything :func:`read_pairs` found; numpy arrays for the resampling and drift."""

    shared: int
    only_baseline: int
    only_current: int
    means: dict[int, tuple]  # metric position -> (n, baseline mean, current mean, delta)
    diffs: np.ndarray  # (queries × metrics) paired differences
    defined: np.ndarray  # where they are defined
    regressed: list[QueryChange]
    regressed_total: int
    improved: list[QueryChange]
    improved_total: int
    new: CauseChanges
    resolved: CauseChanges
    cause_counts: list[dict[str, object]]  # {"cause", "baseline", "current"}
    lists: dict[str, np.ndarray]  # per shared query: query_id, query, na, nb, same
    common: dict[str, np.ndarray]  # per shared document: qi, depth


def headline_present(store: Connection, runs: Runs, wanted: list[str]) -> list[str]:
    """The ``wanted`` metrics both runs hold, in ``wanted``'s order."""
    with store.connect(read_only=True) as con:
        check_runs(con, store, runs)
        present = {row[0] for row in con.execute(
            "SELECT metric FROM metrics WHERE run_id = $1 AND list_contains($3, metric) "
            "INTERSECT SELECT metric FROM metrics WHERE run_id = $2 "
            "AND list_contains($3, metric)", [*runs, wanted]).fetchall()}
    return [name for name in wanted if name in present]


def read_pairs(store: Connection, runs: Runs, wanted: Wanted) -> PairedReads:
    """The two runs on their shared queries (raises :class:`StoreError` for a missing run)."""
    with store.connect(read_only=True) as con:
        check_runs(con, store, runs)
        counts = _prepare(con, runs, wanted)
        diffs, defined = _paired_differences(con, len(wanted.names))
        regressed, regressed_total = _changes(con, runs, "regressed", wanted.limit)
        improved, improved_total = _changes(con, runs, "improved", wanted.limit)
        return PairedReads(
            shared=counts[0], only_baseline=counts[1], only_current=counts[2],
            means=_means(con), diffs=diffs, defined=defined, regressed=regressed,
            regressed_total=regressed_total, improved=improved, improved_total=improved_total,
            new=_cause_changes(con, runs, wanted), resolved=_cause_changes(con, runs[::-1],
                                                                           wanted),
            cause_counts=_cause_counts(con, runs), **_drift_lists(con, runs, wanted.k))


def check_runs(con: Con, store: Connection, runs: Runs) -> None:
    found = {row[0] for row in con.execute(
        "SELECT run_id FROM runs WHERE run_id IN ($1, $2)", list(runs)).fetchall()}
    for run_id in runs:
        if run_id not in found:
            raise StoreError(f"no run {run_id!r} in {store.path}: list runs with `auditor runs`")


def _prepare(con: Con, runs: Runs, wanted: Wanted) -> tuple[int, int, int]:
    """Temp tables: shared queries (qi = position by query id), paired metric values
    defined in both runs, the shared queries' causes, and the queries that moved.
    Returns the shared, baseline-only and current-only query counts."""
    con.register("cmp_wanted", pa.table({
        "metric": pa.array(wanted.names, pa.string()),
        "pos": pa.array(range(len(wanted.names)), pa.int32()),
        "lower": pa.array(wanted.lower, pa.bool_()),
    }))
    con.execute(
        "CREATE TEMP TABLE cmp_shared AS SELECT query_id, "
        "row_number() OVER (ORDER BY query_id) - 1 AS qi FROM ("
        "SELECT query_id FROM query_results WHERE run_id = $1 INTERSECT "
        "SELECT query_id FROM query_results WHERE run_id = $2)", list(runs))
    # NOT isnan(NULL) is NULL: a NULL or NaN value leaves the query out for that metric.
    con.execute(
        "CREATE TEMP TABLE cmp_pairs AS SELECT s.qi, s.query_id, w.pos, b.value AS base, "
        "c.value AS cur, CASE WHEN w.lower THEN b.value - c.value "
        "ELSE c.value - b.value END AS gain FROM metrics b "
        "JOIN metrics c ON c.run_id = $2 AND c.query_id = b.query_id AND c.metric = b.metric "
        "JOIN cmp_wanted w ON w.metric = b.metric JOIN cmp_shared s ON s.query_id = b.query_id "
        "WHERE b.run_id = $1 AND NOT isnan(b.value) AND NOT isnan(c.value)", list(runs))
    con.execute(
        "CREATE TEMP TABLE cmp_causes AS SELECT DISTINCT d.run_id, d.query_id, d.cause, "
        "d.target_id FROM diagnoses d JOIN cmp_shared USING (query_id) "
        "WHERE d.run_id IN ($1, $2)", list(runs))
    # Per query, the metric that got most worse (regressed) or, failing that, most better.
    con.execute(
        "CREATE TEMP TABLE cmp_changed AS SELECT * FROM (SELECT *, "
        "CASE WHEN min(gain) OVER q < -$1 THEN 'regressed' "
        "WHEN max(gain) OVER q > $1 THEN 'improved' END AS kind, "
        "row_number() OVER (PARTITION BY qi ORDER BY gain, pos) AS worst, "
        "row_number() OVER (PARTITION BY qi ORDER BY gain DESC, pos) AS best "
        "FROM cmp_pairs WINDOW q AS (PARTITION BY qi)) "
        "WHERE (kind = 'regressed' AND worst = 1) OR (kind = 'improved' AND best = 1)",
        [wanted.epsilon])
    shared, in_baseline, in_current = con.execute(
        "SELECT (SELECT count(*) FROM cmp_shared), "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $1), "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $2) "
        "FROM query_results WHERE run_id IN ($1, $2)", list(runs)).fetchone()
    return shared, in_baseline - shared, in_current - shared


def _means(con: Con) -> dict[int, tuple]:
    rows = con.execute(
        "SELECT pos, count(*), avg(base), avg(cur), avg(cur - base) FROM cmp_pairs "
        "GROUP BY pos").fetchall()
    return {row[0]: row[1:] for row in rows}


def _paired_differences(con: Con, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries × metrics) differences and where they are defined, over the queries that
    define at least one compared metric."""
    got = con.execute("SELECT qi, pos, cur - base AS diff FROM cmp_pairs").fetchnumpy()
    queries, row = np.unique(np.asarray(got["qi"]), return_inverse=True)
    pos = np.asarray(got["pos"])
    diffs = np.zeros((len(queries), m))
    defined = np.zeros((len(queries), m), dtype=bool)
    diffs[row, pos] = np.asarray(got["diff"], dtype=np.float64)
    defined[row, pos] = True
    return diffs, defined


def _changes(con: Con, runs: Runs, kind: str, limit: int) -> tuple[list[QueryChange], int]:
    """Queries where a compared metric got worse (regressed) or only better (improved),
    each under the metric that moved most, worst or best first."""
    order = "p.gain, p.qi" if kind == "regressed" else "p.gain DESC, p.qi"
    total = con.execute("SELECT count(*) FROM cmp_changed WHERE kind = ?", [kind]).fetchone()
    rows = con.execute(
        f"WITH picked AS (SELECT * FROM cmp_changed p WHERE kind = $3 ORDER BY {order} "
        "LIMIT $4), listed AS (SELECT run_id, query_id, list(DISTINCT cause ORDER BY cause) "
        "AS causes FROM cmp_causes WHERE query_id IN (SELECT query_id FROM picked) GROUP BY ALL) "
        "SELECT p.query_id, q.query, w.metric, p.base, p.cur, p.cur - p.base, "
        "coalesce(b.causes, []), coalesce(c.causes, []) FROM picked p "
        "JOIN cmp_wanted w USING (pos) "
        "LEFT JOIN query_results q ON q.run_id = $2 AND q.query_id = p.query_id "
        "LEFT JOIN listed b ON b.run_id = $1 AND b.query_id = p.query_id "
        f"LEFT JOIN listed c ON c.run_id = $2 AND c.query_id = p.query_id ORDER BY {order}",
        [*runs, kind, limit]).fetchall()
    return [QueryChange(*row) for row in rows], total[0]


def _cause_changes(con: Con, runs: Runs, wanted: Wanted) -> CauseChanges:
    """(query, cause, target) in the second run but not the first, on shared queries."""
    changed = ("SELECT query_id, cause, target_id FROM cmp_causes WHERE run_id = $2 EXCEPT "
               "SELECT query_id, cause, target_id FROM cmp_causes WHERE run_id = $1")
    total = con.execute(f"SELECT count(*) FROM ({changed})", list(runs)).fetchone()
    rows = con.execute(
        f"SELECT query_id, cause, target_id FROM ({changed}) "
        "ORDER BY cause = $4, cause, query_id, target_id NULLS FIRST LIMIT $3",
        [*runs, wanted.limit, wanted.last_cause]).fetchall()
    per_cause = con.execute(
        f"SELECT cause, count(DISTINCT query_id) AS queries FROM ({changed}) "
        "GROUP BY cause ORDER BY queries DESC, cause", list(runs)).fetchall()
    counts: list[dict[str, object]] = [{"cause": cause, "queries": queries}
                                       for cause, queries in per_cause]
    return CauseChanges([CauseChange(*row) for row in rows], total[0], counts)


def _cause_counts(con: Con, runs: Runs) -> list[dict[str, object]]:
    rows = con.execute(
        "SELECT cause, count(DISTINCT query_id) FILTER (WHERE run_id = $1) AS baseline, "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $2) AS current FROM cmp_causes "
        "GROUP BY cause ORDER BY current DESC, baseline DESC, cause", list(runs)).fetchall()
    return [{"cause": c, "baseline": b, "current": n} for c, b, n in rows]


def _drift_lists(con: Con, runs: Runs, k: int) -> dict[str, dict[str, np.ndarray]]:
    """Both runs' top-k distinct documents per shared query: list lengths and, per shared
    document, the depth at which both lists hold it."""
    # Per list, its top-k documents by first rank (chunks may repeat a document), from the
    # hits down to rank 3k only (deduplicating all the hits costs ten times more), except for
    # lists with fewer than k documents there and more hits below: those are read whole.
    top_k = ("SELECT run_id, query_id, min_by(doc_id, rank, $3) AS docs FROM (SELECT "
             "h.run_id, h.query_id, h.doc_id, min(h.rank) AS rank FROM hits h "
             "SEMI JOIN cmp_shared s ON s.query_id = h.query_id {} "
             "WHERE h.run_id IN ($1, $2) {} GROUP BY ALL) GROUP BY ALL")
    con.execute(
        f"CREATE TEMP TABLE cmp_lists AS WITH capped AS ({top_k.format('', 'AND rank <= $4')}),"
        " deeper AS (SELECT DISTINCT run_id, query_id FROM hits WHERE run_id IN ($1, $2) "
        "AND rank > $4 EXCEPT SELECT run_id, query_id FROM capped WHERE len(docs) >= $3), "
        f"whole AS ({top_k.format('SEMI JOIN deeper USING (run_id, query_id)', '')}) "
        "SELECT * FROM capped ANTI JOIN whole USING (run_id, query_id) "
        "UNION ALL SELECT * FROM whole", [*runs, k, RANK_CAP * k])
    lists = con.execute(
        "SELECT s.query_id, q.query, coalesce(len(a.docs), 0) AS na, "
        "coalesce(len(b.docs), 0) AS nb, coalesce(a.docs, []) = coalesce(b.docs, []) AS same "
        "FROM cmp_shared s "
        "LEFT JOIN cmp_lists a ON a.run_id = $1 AND a.query_id = s.query_id "
        "LEFT JOIN cmp_lists b ON b.run_id = $2 AND b.query_id = s.query_id "
        "LEFT JOIN query_results q ON q.run_id = $2 AND q.query_id = s.query_id "
        "ORDER BY s.qi", list(runs)).fetchnumpy()
    common = con.execute(
        "WITH items AS (SELECT run_id, query_id, unnest(docs) AS doc_id, "
        "generate_subscripts(docs, 1) AS pos FROM cmp_lists) "
        "SELECT s.qi, greatest(a.pos, b.pos) AS depth FROM items a "
        "JOIN items b USING (query_id, doc_id) JOIN cmp_shared s USING (query_id) "
        "WHERE a.run_id = $1 AND b.run_id = $2", list(runs)).fetchnumpy()
    return {"lists": dict(lists), "common": dict(common)}
