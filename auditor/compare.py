"""Compare two runs on the queries both answered: per-metric deltas with paired bootstrap
confidence intervals and a paired randomization test (Holm-corrected across the compared
metrics), regressed and improved queries, new and resolved causes, and label-free drift of
the result lists (overlap@k, RBO).

Joins and per-query rankings run in DuckDB (one short read-only connection, temp tables);
the resampling runs in numpy on the paired differences after the connection is closed: one
random matrix shared by the metrics, in chunks of ≈500k draws so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from auditor.cases import DRIFT
from auditor.metrics.drift import RBO_P
from auditor.metrics.registry import headline, lower_is_better
from auditor.store import Store, StoreError

CONFIDENCE = 0.95  # of the bootstrap interval
CHANGE_EPSILON = 1e-9  # a query moved when a metric changed by more than this
WORST_DRIFT = 20  # queries listed in drift["worst"]
_CELLS = 1 << 19  # random draws per chunk: small enough to stay in cache
_RANK_CAP = 3  # drift reads hits down to rank 3k first


@dataclass(frozen=True)
class MetricDelta:
    metric: str
    n: int  # queries where both runs define the metric
    baseline_mean: float | None  # over those n queries
    current_mean: float | None
    delta: float | None  # current - baseline (mean of the paired differences)
    ci_low: float | None  # paired bootstrap 95% interval of delta
    ci_high: float | None
    p_value: float | None  # two-sided paired randomization (sign-flip) test
    p_holm: float | None  # Holm-adjusted across the compared metrics
    lower_is_better: bool = False


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


@dataclass
class Comparison:
    baseline_run_id: str
    run_id: str
    shared_queries: int
    only_baseline: int
    only_current: int
    alpha: float
    metrics: list[MetricDelta]
    regressed: list[QueryChange]  # worst first, at most `limit`
    improved: list[QueryChange]  # best first, at most `limit`
    regressed_total: int
    improved_total: int
    new_causes: list[CauseChange]  # at most `limit`
    resolved_causes: list[CauseChange]
    cause_counts: list[dict[str, Any]]  # {"cause", "baseline", "current"} queries per cause
    drift: dict[str, Any]  # {"k", "n", "overlap", "rbo", "changed", "worst": [...]}
    new_causes_total: int = 0
    resolved_causes_total: int = 0
    # queries per cause among all new (resolved) pairs, not only the listed ones
    new_cause_counts: list[dict[str, Any]] = field(default_factory=list)
    resolved_cause_counts: list[dict[str, Any]] = field(default_factory=list)

    def metric(self, name: str) -> MetricDelta | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(
    store: Store,
    baseline_run_id: str,
    run_id: str,
    *,
    metrics: list[str] | None = None,
    k: int = 10,
    alpha: float = 0.05,
    resamples: int = 10_000,
    seed: int = 0,
    limit: int = 100,
) -> Comparison:
    """``run_id`` against ``baseline_run_id``, paired by query id on the shared queries.

    ``metrics`` defaults to the headline metrics at ``k`` present in both runs. Statistics
    are deterministic given ``seed``; the lists are cut at ``limit`` (totals are kept).
    """
    runs = (baseline_run_id, run_id)
    with store.connect(read_only=True) as con:
        _check_runs(con, store, runs)
        names = list(dict.fromkeys(metrics)) if metrics is not None else _headline(con, runs, k)
        counts = _prepare(con, runs, names)
        means = _means(con)
        diffs, defined = _paired_differences(con, len(names))
        regressed, regressed_total = _changes(con, runs, "regressed", limit)
        improved, improved_total = _changes(con, runs, "improved", limit)
        new, new_total, new_counts = _cause_changes(con, runs, limit)
        resolved, resolved_total, resolved_counts = _cause_changes(con, runs[::-1], limit)
        cause_counts = _cause_counts(con, runs)
        drift = _drift(con, runs, k)
    low, high, p = paired_tests(diffs, defined, resamples=resamples, seed=seed)
    deltas = _metric_deltas(names, means, low, high, p)
    return Comparison(
        baseline_run_id=baseline_run_id, run_id=run_id, shared_queries=counts[0],
        only_baseline=counts[1], only_current=counts[2], alpha=alpha, metrics=deltas,
        regressed=regressed, improved=improved, regressed_total=regressed_total,
        improved_total=improved_total, new_causes=new, resolved_causes=resolved,
        cause_counts=cause_counts, drift=drift, new_causes_total=new_total,
        resolved_causes_total=resolved_total, new_cause_counts=new_counts,
        resolved_cause_counts=resolved_counts,
    )


def comparison_table(comparison: Comparison) -> pa.Table:
    """One row per compared metric, in the columns of the store's ``comparisons`` table."""
    schema = pa.schema([
        ("run_id", pa.string()), ("baseline_run_id", pa.string()), ("metric", pa.string()),
        ("n", pa.int32()), ("baseline_mean", pa.float64()), ("current_mean", pa.float64()),
        ("delta", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
        ("p_value", pa.float64()), ("p_holm", pa.float64()),
    ])
    rows = [
        {"run_id": comparison.run_id, "baseline_run_id": comparison.baseline_run_id,
         **{name: getattr(m, name) for name in schema.names[2:]}}
        for m in comparison.metrics
    ]
    return pa.Table.from_pylist(rows, schema=schema)


# statistics ------------------------------------------------------------------------------
def paired_tests(
    diffs: np.ndarray, defined: np.ndarray, *, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of the (queries × metrics) paired differences: the percentile bootstrap
    interval of their mean and the two-sided sign-flip p-value, over the defined cells.

    NaN where a metric has no defined query. p = (#{|T*| >= |T|} + 1) / (resamples + 1),
    and 1 when every difference is zero.
    """
    m = diffs.shape[1]
    if diffs.size == 0:
        return np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    x = np.where(defined, diffs, 0.0)
    rng = np.random.default_rng(seed)
    p = _sign_flip_p(x, rng, resamples)
    low, high = _bootstrap_interval(x, defined, rng, resamples)
    p[~defined.any(axis=0)] = np.nan
    return low, high, p


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjustment over the p-values that are not None: monotone
    in the order of the raw p-values and capped at 1."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[i] = running
    return adjusted


def _chunk_rows(n: int, resamples: int) -> int:
    return max(1, min(resamples, _CELLS // max(n, 1)))


def _sign_flip_p(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """One random sign matrix for all metrics: T* = signs @ x, with x = 0 where undefined.
    A sign on a row of zeros changes nothing, so those rows are left out."""
    x = x[x.any(axis=1)]
    n, m = x.shape
    if n == 0:
        return np.ones(m)
    observed = x.sum(axis=0)
    # Summation order differs between T and T*: forgive float noise, not real differences.
    bar = np.abs(observed) - 1e-10 * np.abs(x).sum(axis=0)
    extreme = np.zeros(m, dtype=np.int64)
    rows = _chunk_rows(n, resamples)
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        bytes_ = rng.integers(0, 256, size=(size, (n + 7) // 8), dtype=np.uint8)
        plus = np.unpackbits(bytes_, axis=1, count=n).astype(np.float64)
        flipped = 2.0 * (plus @ x) - observed  # sum of +d for bit 1, -d for bit 0
        extreme += (np.abs(flipped) >= bar).sum(axis=0)
    p = (extreme + 1) / (resamples + 1)
    p[~x.any(axis=0)] = 1.0
    return p


def _bootstrap_interval(
    x: np.ndarray, defined: np.ndarray, rng: np.random.Generator, resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Metrics defined on the same queries share one bootstrap-count matrix, so each
    metric is resampled over exactly its own n queries."""
    m = x.shape[1]
    low, high = np.full(m, np.nan), np.full(m, np.nan)
    patterns, group = np.unique(defined.T, axis=0, return_inverse=True)
    tail = (1 - CONFIDENCE) / 2 * 100
    for g, rows in enumerate(patterns):
        columns = np.flatnonzero(group.ravel() == g)
        if not rows.any():
            continue
        means = _bootstrap_means(x[rows][:, columns], rng, resamples)
        low[columns], high[columns] = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def _bootstrap_means(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples × metrics) means of n rows drawn with replacement from x (n × m).

    Rows of zeros add nothing to a sum, so only the draws landing on the other rows are made:
    their number is Binomial(n, moving / n), and they fall uniformly on the moving rows. The
    same distribution as drawing all n, at a cost that grows with the queries that changed.
    """
    n = x.shape[0]
    moving = x[x.any(axis=1)]
    means = np.zeros((resamples, x.shape[1]))
    if not len(moving):
        return means
    rows = _chunk_rows(len(moving), resamples)
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        landed = rng.binomial(n, len(moving) / n, size)
        draws = rng.integers(0, len(moving), landed.sum())
        draws += np.repeat(np.arange(size) * len(moving), landed)
        counts = np.bincount(draws, minlength=size * len(moving)).reshape(size, -1)
        means[start:start + size] = counts.astype(np.float64) @ moving / n
    return means


def _metric_deltas(
    names: list[str], means: dict[int, tuple], low: np.ndarray, high: np.ndarray,
    p: np.ndarray,
) -> list[MetricDelta]:
    p_values = [None if np.isnan(v) else float(v) for v in p]
    adjusted = holm(p_values)
    out = []
    for pos, name in enumerate(names):
        n, base, cur, delta = means.get(pos, (0, None, None, None))
        defined = n > 0
        out.append(MetricDelta(
            metric=name, n=int(n), baseline_mean=base, current_mean=cur, delta=delta,
            ci_low=float(low[pos]) if defined else None,
            ci_high=float(high[pos]) if defined else None,
            p_value=p_values[pos], p_holm=adjusted[pos], lower_is_better=lower_is_better(name),
        ))
    return out


# reading ---------------------------------------------------------------------------------
Connection = duckdb.DuckDBPyConnection


def _check_runs(con: Connection, store: Store, runs: tuple[str, str]) -> None:
    found = {row[0] for row in con.execute(
        "SELECT run_id FROM runs WHERE run_id IN ($1, $2)", list(runs)).fetchall()}
    for run_id in runs:
        if run_id not in found:
            raise StoreError(f"no run {run_id!r} in {store.path}: list runs with `auditor runs`")


def _headline(con: Connection, runs: tuple[str, str], k: int) -> list[str]:
    wanted = headline(k)
    present = {row[0] for row in con.execute(
        "SELECT metric FROM metrics WHERE run_id = $1 AND list_contains($3, metric) INTERSECT "
        "SELECT metric FROM metrics WHERE run_id = $2 AND list_contains($3, metric)",
        [*runs, wanted]).fetchall()}
    return [name for name in wanted if name in present]


def _prepare(con: Connection, runs: tuple[str, str], names: list[str]) -> tuple[int, int, int]:
    """Temp tables: shared queries (qi = position by query id), paired metric values
    defined in both runs, the shared queries' causes, and the queries that moved.
    Returns the shared, baseline-only and current-only query counts."""
    con.register("cmp_wanted", pa.table({
        "metric": pa.array(names, pa.string()), "pos": pa.array(range(len(names)), pa.int32()),
        "lower": pa.array([lower_is_better(name) for name in names], pa.bool_()),
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
        [CHANGE_EPSILON])
    shared, in_baseline, in_current = con.execute(
        "SELECT (SELECT count(*) FROM cmp_shared), "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $1), "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $2) "
        "FROM query_results WHERE run_id IN ($1, $2)", list(runs)).fetchone()
    return shared, in_baseline - shared, in_current - shared


def _means(con: Connection) -> dict[int, tuple]:
    rows = con.execute(
        "SELECT pos, count(*), avg(base), avg(cur), avg(cur - base) FROM cmp_pairs "
        "GROUP BY pos").fetchall()
    return {row[0]: row[1:] for row in rows}


def _paired_differences(con: Connection, m: int) -> tuple[np.ndarray, np.ndarray]:
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


def _changes(
    con: Connection, runs: tuple[str, str], kind: str, limit: int
) -> tuple[list[QueryChange], int]:
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


def _cause_changes(
    con: Connection, runs: tuple[str, str], limit: int
) -> tuple[list[CauseChange], int, list[dict[str, Any]]]:
    """(query, cause, target) in the second run but not the first, on shared queries: the
    first ``limit`` pairs, how many there are, and queries per cause over all of them."""
    changed = ("SELECT query_id, cause, target_id FROM cmp_causes WHERE run_id = $2 EXCEPT "
               "SELECT query_id, cause, target_id FROM cmp_causes WHERE run_id = $1")
    total = con.execute(f"SELECT count(*) FROM ({changed})", list(runs)).fetchone()
    rows = con.execute(
        f"SELECT query_id, cause, target_id FROM ({changed}) "
        "ORDER BY cause = $4, cause, query_id, target_id NULLS FIRST LIMIT $3",
        [*runs, limit, DRIFT]).fetchall()  # drift (not a failure) listed last
    per_cause = con.execute(
        f"SELECT cause, count(DISTINCT query_id) AS queries FROM ({changed}) "
        "GROUP BY cause ORDER BY queries DESC, cause", list(runs)).fetchall()
    counts = [{"cause": cause, "queries": queries} for cause, queries in per_cause]
    return [CauseChange(*row) for row in rows], total[0], counts


def _cause_counts(con: Connection, runs: tuple[str, str]) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT cause, count(DISTINCT query_id) FILTER (WHERE run_id = $1) AS baseline, "
        "count(DISTINCT query_id) FILTER (WHERE run_id = $2) AS current FROM cmp_causes "
        "GROUP BY cause ORDER BY current DESC, baseline DESC, cause", list(runs)).fetchall()
    return [{"cause": c, "baseline": b, "current": n} for c, b, n in rows]


# drift -----------------------------------------------------------------------------------
def _drift(con: Connection, runs: tuple[str, str], k: int) -> dict[str, Any]:
    """Overlap@k and RBO of the two runs' top-k distinct documents, per shared query."""
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
        "UNION ALL SELECT * FROM whole", [*runs, k, _RANK_CAP * k])
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
    overlap, rbo = overlap_and_rbo(
        np.asarray(lists["na"]), np.asarray(lists["nb"]), np.asarray(common["qi"]),
        np.asarray(common["depth"]), k)
    defined = np.flatnonzero(~np.isnan(overlap))
    worst = defined[np.lexsort((defined, rbo[defined], overlap[defined]))][:WORST_DRIFT]
    return {
        "k": k, "n": len(defined),
        "overlap": float(overlap[defined].mean()) if len(defined) else None,
        "rbo": float(rbo[defined].mean()) if len(defined) else None,
        "changed": int((~np.asarray(lists["same"], dtype=bool)).sum()),
        "worst": [{"query_id": str(lists["query_id"][i]), "query": lists["query"][i],
                   "overlap": float(overlap[i]), "rbo": float(rbo[i])} for i in worst],
    }


def overlap_and_rbo(
    na: np.ndarray, nb: np.ndarray, qi: np.ndarray, depth: np.ndarray, k: int,
    p: float = RBO_P,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`~auditor.metrics.drift.overlap_at_k` and ``rbo`` for many pairs of
    distinct top-k lists, from their lengths and, per shared item, the depth at which both
    lists hold it (max of its two ranks). NaN where both lists are empty.

    RBO (Webber et al. 2010, eq. 32) with X_d = items shared by the depth-d prefixes.
    """
    q = len(na)
    short, long_ = np.minimum(na, nb), np.maximum(na, nb)
    entered = np.bincount(qi * k + depth - 1, minlength=q * k).reshape(q, k)
    x = entered.cumsum(axis=1).astype(np.float64)  # x[:, d - 1] = X_d
    d = np.arange(1, k + 1)
    weight = p ** d
    upto_long = d <= long_[:, None]
    s, big = np.maximum(short, 1), np.maximum(long_, 1)
    x_s, x_l = x[np.arange(q), s - 1], x[np.arange(q), big - 1]
    total = (x / d * weight * upto_long).sum(axis=1)
    beyond = upto_long & (d > short[:, None])
    total += (x_s[:, None] * (d - s[:, None]) / (s[:, None] * d) * weight * beyond).sum(axis=1)
    rbo = (1 - p) / p * total + ((x_l - x_s) / big + x_s / s) * p ** big
    rbo = np.where(short == 0, 0.0, rbo)
    overlap = x_l / big
    overlap[long_ == 0] = np.nan
    rbo[long_ == 0] = np.nan
    return overlap, rbo
