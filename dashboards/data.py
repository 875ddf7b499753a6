"""The dashboard's reads: short read-only DuckDB connections, results cached per store version.

A DuckDB file is open read-write by one process or read-only by many, never both, so the
nightly writer must never wait for a browser tab: every reader opens a read-only
connection, runs its SQL and closes it at once. Results (never connections) are cached
with ``st.cache_data``, keyed by the store's path and modification time (``Source``), so a
new nightly run shows up without a restart. Aggregation, sorting and paging happen in SQL:
no reader hands a widget more than a page of rows.

A store written by an older auditor (before migration m003) lacks the gates, comparisons
and passages tables and the runs' gate columns: :func:`has` tells, and the readers return
empty frames or NULL columns for what is absent rather than failing.

This module holds the shared readers (runs, metric summaries, gates, causes, segments);
``dashboards.query_data`` the per-query ones and ``dashboards.corpus_data`` corpus and scatter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from auditor.diagnose import DRIFT
from auditor.metrics.registry import bounded, lower_is_better
from auditor.store import Store, StoreError

TTL = 600  # seconds: a changed store is noticed through its version before this anyway
Z95 = 1.959964  # normal quantile of a two-sided 95% interval
TREND_RUNS = 30
_METRIC_NAME = re.compile(r"^[a-z_]+(@\d+)?$")


class Source(NamedTuple):
    """Which store, and which version of it: the cache key of every reader."""

    path: str
    version: int


def source(path: Path) -> Source:
    """The store at ``path`` with its current version (file and WAL modification times)."""
    if not path.is_file():
        raise StoreError(f"no results store at {path}: run `auditor run` first, or start the "
                         "dashboard with `auditor dashboard --store PATH`")
    wal = path.with_name(path.name + ".wal")
    version = path.stat().st_mtime_ns + (wal.stat().st_mtime_ns if wal.exists() else 0)
    return Source(str(path), version)


def frame(src: Source, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one query on a fresh read-only connection (closed before returning)."""
    with Store(Path(src.path)).connect(read_only=True) as con:
        return con.sql(sql, params=params or {}).to_arrow_table().to_pandas()


@st.cache_data(ttl=TTL, show_spinner=False)
def schema(src: Source) -> frozenset[str]:
    """The store's table names and ``table.column`` names."""
    df = frame(src, "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'main'")
    return frozenset(df["table_name"]) | frozenset(df["table_name"] + "." + df["column_name"])


def has(src: Source, name: str) -> bool:
    """Whether the store has the table (``gates``) or the column (``runs.gate_status``)."""
    return name in schema(src)


def _runs_column(src: Source, column: str) -> str:
    """A column of ``runs`` that older stores lack, as NULL there."""
    return f"r.{column}" if has(src, f"runs.{column}") else f"NULL::VARCHAR AS {column}"


def metric_sql_name(metric: str) -> str:
    """A metric name checked for use as a quoted SQL identifier."""
    if not _METRIC_NAME.match(metric):
        raise ValueError(f"not a metric name: {metric!r}")
    return f'"{metric}"'


# segments ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A slice of a run's queries: metadata values per key, and a logged time range (UTC)."""

    metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def where(self, alias: str = "q") -> tuple[str, dict[str, Any]]:
        """SQL conditions on ``query_results`` (as ``alias``) and their named parameters."""
        clauses, params = ["TRUE"], {}
        for i, (key, values) in enumerate(self.metadata):
            if values:
                clauses.append(f"list_contains($seg_v{i}, {alias}.metadata ->> $seg_k{i})")
                params[f"seg_k{i}"], params[f"seg_v{i}"] = key, list(values)
        if self.start is not None:
            clauses.append(f"{alias}.logged_at >= $seg_start")
            params["seg_start"] = self.start
        if self.end is not None:
            clauses.append(f"{alias}.logged_at <= $seg_end")
            params["seg_end"] = self.end
        return " AND ".join(clauses), params

    @property
    def active(self) -> bool:
        return any(v for _, v in self.metadata) or self.start is not None or self.end is not None


@st.cache_data(ttl=TTL, show_spinner=False)
def segment_values(src: Source, run_id: str, limit: int = 50) -> dict[str, list[str]]:
    """Metadata keys of a run's queries with their most frequent values (JSON keys found by
    SQL, so any segment key the log carries can filter)."""
    df = frame(src, """
        WITH kv AS (SELECT unnest(json_keys(metadata)) AS key, metadata FROM query_results
                    WHERE run_id = $run AND metadata IS NOT NULL)
        SELECT key, metadata ->> key AS value, count(*) AS n FROM kv
        WHERE NOT starts_with(key, '$') AND NOT starts_with(key, '/')
        GROUP BY key, value
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY n DESC, value) <= $lim
        ORDER BY key, n DESC, value""", {"run": run_id, "lim": limit})
    df = df[df["value"].notna()]
    return {key: list(group["value"]) for key, group in df.groupby("key", sort=True)}


@st.cache_data(ttl=TTL, show_spinner=False)
def logged_range(src: Source, run_id: str) -> tuple[datetime | None, datetime | None]:
    """First and last logged time of the run's queries (UTC), whole minutes."""
    row = frame(src, "SELECT date_trunc('minute', min(timezone('UTC', logged_at))) AS lo, "
                     "date_trunc('minute', max(timezone('UTC', logged_at))) "
                     "+ INTERVAL 1 MINUTE AS hi FROM query_results WHERE run_id = $run",
                {"run": run_id}).iloc[0]
    if pd.isna(row["lo"]) or pd.isna(row["hi"]):
        return None, None
    return (row["lo"].to_pydatetime().replace(tzinfo=UTC),
            row["hi"].to_pydatetime().replace(tzinfo=UTC))


# runs ------------------------------------------------------------------------------------
GATE_STATUS_LEGACY = ("CASE WHEN NOT passed THEN 'failed' WHEN kind = 'max_drop' AND value IS "
                      "NULL THEN 'not_evaluated' ELSE 'passed' END")


def gate_status_sql(src: Source) -> str:
    """Each gate row's status: the stored column, else derived as migration m005 backfills it
    (a relative gate that passed without a value had no baseline: not evaluated)."""
    if has(src, "gates.status"):
        return f"coalesce(status, {GATE_STATUS_LEGACY})"
    return GATE_STATUS_LEGACY


def _shown_gate_status(src: Source) -> tuple[str, str, str]:
    """The WITH clause, joins and expression of each run's shown gate status: its newest
    stored verdict, else what its gate rows say, else ``runs.gate_status``."""
    ctes, joins, parts = [], "", []
    if has(src, "verdicts"):
        ctes.append("v AS (SELECT run_id, arg_max(gate_status, created_at) AS status "
                    "FROM verdicts GROUP BY run_id)")
        joins += " LEFT JOIN v USING (run_id)"
        parts.append("v.status")
    if has(src, "gates"):
        ctes.append(f"""g AS (SELECT run_id, CASE WHEN bool_or(s = 'failed') THEN 'failed'
                              WHEN bool_or(s = 'not_evaluated') THEN 'not_evaluated'
                              ELSE 'passed' END AS status
                       FROM (SELECT run_id, {gate_status_sql(src)} AS s FROM gates)
                       GROUP BY run_id)""")
        joins += " LEFT JOIN g USING (run_id)"
        parts.append("g.status")
    if has(src, "runs.gate_status"):
        parts.append("r.gate_status")
    with_clause = f"WITH {', '.join(ctes)}" if ctes else ""
    return with_clause, joins, f"coalesce({', '.join(parts)})" if parts else "NULL::VARCHAR"


@st.cache_data(ttl=TTL, show_spinner=False)
def _stored_runs(src: Source) -> pd.DataFrame:
    with_clause, joins, expression = _shown_gate_status(src)
    df = frame(src, f"""
        {with_clause}
        SELECT r.run_id, r.started_at, r.finished_at, r.status, r.status_reason,
               {expression} AS gate_status, {_runs_column(src, "baseline_run_id")},
               r.backend, r.mode, r.level, r.config ->> 'log' AS log,
               TRY_CAST(r.counts ->> 'replayed' AS BIGINT) AS queries,
               coalesce(TRY_CAST(r.config ->> 'diagnose_k' AS INTEGER), 10) AS k
        FROM runs r{joins} ORDER BY r.started_at DESC""")
    df["group"] = groups(df)
    return df


def groups(df: pd.DataFrame) -> list[str]:
    """Each run's group, named: runs that can be compared share backend, mode, level and
    log. A log shows by its file name, or by its whole path where two logs share a name."""
    logs = [log if isinstance(log, str) else None for log in df["log"]]
    names = {log: Path(log).name for log in set(logs) if log is not None}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return [f"{row.backend} {row.mode} · {row.level} level · "
            + ("no log" if log is None else log if names[log] in shared else names[log])
            for row, log in zip(df.itertuples(), logs, strict=True)]


def runs(src: Source) -> pd.DataFrame:
    """Every run, newest first, with its query count, diagnosis cut-off, shown gate status
    and comparable group. A run still ``running`` gets the status ``Store.runs`` shows (e.g.
    ``interrupted`` once its process is gone), asked afresh: that changes without the file."""
    df = _stored_runs(src)
    if (df["status"] == "running").any():
        df = df.copy()
        shown = {row["run_id"]: row for row in Store(Path(src.path)).runs()}
        for column in ("status", "status_reason"):
            df[column] = df["run_id"].map(
                lambda i, c=column: shown.get(i, {}).get(c)).fillna(df[column])
    return df


def default_run(src: Source) -> str | None:
    """The newest complete run, else the newest run (None in an empty store)."""
    df = runs(src)
    complete = df[df["status"] == "complete"]
    return (complete if len(complete) else df)["run_id"].iloc[0] if len(df) else None


def run_row(src: Source, run_id: str) -> dict[str, Any]:
    df = runs(src)
    match = df[df["run_id"] == run_id]
    if match.empty:
        raise StoreError(f"no run {run_id!r} in {src.path}: pick one in the sidebar")
    return {key: None if _missing(value) else value
            for key, value in match.iloc[0].to_dict().items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


@st.cache_data(ttl=TTL, show_spinner=False)
def run_details(src: Source, run_id: str) -> dict[str, Any]:
    """The run's config, fingerprint, counts and manifest, parsed."""
    return Store(Path(src.path)).run(run_id)


def comparable(src: Source, run_id: str, limit: int = TREND_RUNS) -> pd.DataFrame:
    """The newest ``limit`` finished runs of the run's group (same backend, mode, level and
    log), oldest first: the runs a trend may draw side by side."""
    df = runs(src)
    group = df.loc[df["run_id"] == run_id, "group"]
    df = df[df["status"].isin(["complete", "partial"])
            & (df["group"] == (group.iloc[0] if len(group) else None))]
    return df.head(limit).iloc[::-1].reset_index(drop=True)


# metrics ---------------------------------------------------------------------------------
def headline_metrics(k: int) -> list[str]:
    """The metrics the Overview leads with, at the run's diagnosis cut-off ``k``."""
    return [f"recall@{k}", f"ndcg@{k}", f"mrr@{k}", f"hit@{k}", f"answer_coverage@{k}",
            "index_coverage", f"silver_recall@{k}", f"gatherable@{k}", "scatter_docs",
            f"overlap@{k}"]


def trend_metrics(k: int) -> list[str]:
    return [f"recall@{k}", f"ndcg@{k}", f"answer_coverage@{k}", "scatter_docs"]


def _with_ci(df: pd.DataFrame) -> pd.DataFrame:
    """Add a 95% normal-approximation interval of each mean (clipped for bounded metrics)."""
    half = Z95 * df["sd"].fillna(0.0) / df["n"].clip(lower=1) ** 0.5
    df["ci_low"], df["ci_high"] = df["mean"] - half, df["mean"] + half
    limited = df["metric"].map(bounded)
    df.loc[limited, "ci_low"] = df.loc[limited, "ci_low"].clip(lower=0.0)
    df.loc[limited, "ci_high"] = df.loc[limited, "ci_high"].clip(upper=1.0)
    return df.drop(columns="sd")


@st.cache_data(ttl=TTL, show_spinner=False)
def metric_summary(src: Source, run_id: str, metrics: tuple[str, ...],
                   segment: Segment = Segment()) -> pd.DataFrame:
    """Mean, n (queries where defined), undefined count and 95% CI of each metric."""
    where, params = segment.where()
    df = frame(src, f"""
        SELECT m.metric, avg(m.value) AS mean, count(m.value) AS n,
               count(*) - count(m.value) AS undefined, stddev_samp(m.value) AS sd
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        WHERE m.run_id = $run AND list_contains($metrics, m.metric) AND {where}
        GROUP BY m.metric""", {"run": run_id, "metrics": list(metrics), **params})
    order = {name: i for i, name in enumerate(metrics)}
    df = df.sort_values("metric", key=lambda s: s.map(order)).reset_index(drop=True)
    return _with_ci(df)


def trend(src: Source, run_id: str, metrics: tuple[str, ...],
          limit: int = TREND_RUNS) -> pd.DataFrame:
    """Mean and CI of each metric in the newest ``limit`` finished runs comparable with the
    run (``comparable``), oldest first, with each run's shown gate status."""
    group = comparable(src, run_id, limit)
    df = _trend(src, tuple(group["run_id"]), metrics)
    status = dict(zip(group["run_id"], group["gate_status"].fillna("not gated"), strict=True))
    df["gate_status"] = df["run_id"].map(status)
    return df


@st.cache_data(ttl=TTL, show_spinner=False)
def _trend(src: Source, run_ids: tuple[str, ...], metrics: tuple[str, ...]) -> pd.DataFrame:
    df = frame(src, """
        SELECT r.run_id, r.started_at, m.metric, avg(m.value) AS mean, count(m.value) AS n,
               stddev_samp(m.value) AS sd
        FROM runs r JOIN metrics m USING (run_id)
        WHERE list_contains($runs, r.run_id) AND list_contains($metrics, m.metric)
        GROUP BY ALL ORDER BY r.started_at, m.metric""",
               {"runs": list(run_ids), "metrics": list(metrics)})
    return _with_ci(df)


# Causes of failure per query: drift (production served other results than the index
# returns today) is no failure, and is shown apart wherever causes are listed.
_CAUSES_CTE = ("c AS (SELECT query_id, string_agg(DISTINCT cause, ', ' ORDER BY cause) AS causes, "
               "count(DISTINCT cause) AS n_causes FROM diagnoses WHERE run_id = $run "
               "AND cause <> $drift GROUP BY query_id)")


@st.cache_data(ttl=TTL, show_spinner=False)
def regressed(src: Source, baseline_run_id: str, run_id: str, metric: str,
              limit: int = 10) -> pd.DataFrame:
    """Queries whose ``metric`` got worst against the baseline, with their causes now."""
    worse, order = (">", "DESC") if lower_is_better(metric) else ("<", "ASC")
    return frame(src, f"""
        WITH {_CAUSES_CTE}
        SELECT m.query_id, q.query, b.value AS baseline, m.value AS current,
               m.value - b.value AS delta, c.causes
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        JOIN metrics b ON b.run_id = $base AND b.query_id = m.query_id AND b.metric = m.metric
        LEFT JOIN c ON c.query_id = m.query_id
        WHERE m.run_id = $run AND m.metric = $metric AND m.value {worse} b.value
        ORDER BY delta {order}, m.query_id LIMIT $lim""",
                 {"run": run_id, "base": baseline_run_id, "metric": metric, "lim": limit,
                  "drift": DRIFT})


@st.cache_data(ttl=TTL, show_spinner=False)
def failing(src: Source, run_id: str, metric: str, limit: int = 10) -> pd.DataFrame:
    """Queries with the worst ``metric`` in the run, most causes first: below 1 for a
    bounded metric, else worse than the run's best value."""
    lower = lower_is_better(metric)
    best = "1" if bounded(metric) and not lower else (
        f"(SELECT {'min' if lower else 'max'}(value) FROM metrics "
        "WHERE run_id = $run AND metric = $metric)")
    return frame(src, f"""
        WITH {_CAUSES_CTE}
        SELECT m.query_id, q.query, m.value AS current, c.causes
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        LEFT JOIN c ON c.query_id = m.query_id
        WHERE m.run_id = $run AND m.metric = $metric AND m.value {'>' if lower else '<'} {best}
        ORDER BY m.value {'DESC' if lower else 'ASC'}, c.n_causes DESC NULLS LAST, m.query_id
        LIMIT $lim""", {"run": run_id, "metric": metric, "lim": limit, "drift": DRIFT})


# causes ----------------------------------------------------------------------------------
class Causes(NamedTuple):
    """The failure causes of a segment's queries, and its drift apart."""

    size: int  # queries in the segment
    diagnosed: int  # of those, the queries with at least one failure cause (drift is none)
    counts: pd.DataFrame  # cause, queries, targets, share (of the segment), most queries first
    drifted: int = 0  # queries production served other results for than the index gives now


@st.cache_data(ttl=TTL, show_spinner=False)
def causes(src: Source, run_id: str, segment: Segment = Segment()) -> Causes:
    """Queries (and targets) per failure cause in the segment, in one aggregate: the empty
    grouping set adds the row of all causes (cause NULL), whose distinct queries are the
    diagnosed. Drifted queries are counted apart."""
    where, params = segment.where()
    df = frame(src, f"""
        WITH sel AS (SELECT query_id FROM query_results q WHERE q.run_id = $run AND {where}),
        d AS (SELECT * FROM diagnoses SEMI JOIN sel USING (query_id) WHERE run_id = $run)
        SELECT cause, count(DISTINCT query_id) AS queries, count(target_id) AS targets,
               (SELECT count(*) FROM sel) AS size,
               (SELECT count(DISTINCT query_id) FROM d WHERE cause = $drift) AS drifted
        FROM d WHERE cause <> $drift
        GROUP BY GROUPING SETS ((cause), ())""", {"run": run_id, "drift": DRIFT, **params})
    total = df[df["cause"].isna()].iloc[0]
    size = int(total["size"])
    counts = df[df["cause"].notna()].drop(columns=["size", "drifted"])
    counts["share"] = counts["queries"] / max(size, 1)
    counts = counts.sort_values(["queries", "cause"], ascending=[False, True])
    return Causes(size, int(total["queries"]), counts.reset_index(drop=True),
                  int(total["drifted"]))


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_trend(src: Source, run_ids: tuple[str, ...],
                segment: Segment = Segment()) -> pd.DataFrame:
    """Share of each run's (segment's) queries per failure cause, for the given runs (the
    comparable ones), oldest first; drift has its own line, apart from the causes."""
    where, params = segment.where()
    return frame(src, f"""
        WITH recent AS (SELECT run_id, started_at FROM runs WHERE list_contains($runs, run_id)),
        sel AS (SELECT q.run_id, q.query_id FROM query_results q JOIN recent USING (run_id)
                WHERE {where}),
        size AS (SELECT run_id, count(*) AS n FROM sel GROUP BY run_id),
        counted AS (SELECT d.run_id, d.cause, count(DISTINCT d.query_id) AS queries
                    FROM diagnoses d JOIN sel USING (run_id, query_id) GROUP BY ALL),
        causes AS (SELECT DISTINCT cause FROM counted)
        -- every (run, cause) pair, so a cause a run did not have is drawn at 0, not left out
        SELECT r.run_id, r.started_at, c.cause, coalesce(k.queries, 0) AS queries,
               coalesce(k.queries, 0) / size.n AS share
        FROM recent r JOIN size USING (run_id) CROSS JOIN causes c
        LEFT JOIN counted k ON k.run_id = r.run_id AND k.cause = c.cause
        ORDER BY r.started_at, c.cause""", {"runs": list(run_ids), **params})


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_examples(src: Source, run_id: str, segment: Segment = Segment(),
                   limit: int = 5) -> pd.DataFrame:
    """A few queries per cause (most targets first), each with its first row of evidence."""
    where, params = segment.where()
    df = frame(src, f"""
        SELECT d.cause, d.query_id, any_value(q.query) AS query,
               string_agg(d.target_id, ', ' ORDER BY d.target_id) AS targets,
               first(d.evidence ORDER BY d.target_id NULLS FIRST) AS evidence
        FROM diagnoses d JOIN query_results q ON q.run_id = d.run_id AND q.query_id = d.query_id
        WHERE d.run_id = $run AND {where}
        GROUP BY d.cause, d.query_id
        QUALIFY row_number() OVER (PARTITION BY d.cause ORDER BY count(*) DESC, d.query_id)
                <= $lim
        ORDER BY d.cause, count(*) DESC, d.query_id""",
                {"run": run_id, "lim": limit, **params})
    df["evidence"] = df["evidence"].map(lambda text: json.loads(text) if text else {})
    return df


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_changes(src: Source, baseline_run_id: str, run_id: str) -> pd.DataFrame:
    """Queries per cause in the baseline and in the run, over the queries both answered (the
    counts of ``Comparison.cause_counts``, without the cost of the whole comparison)."""
    return frame(src, """
        WITH shared AS (SELECT query_id FROM query_results WHERE run_id = $base INTERSECT
                        SELECT query_id FROM query_results WHERE run_id = $run)
        SELECT cause, count(DISTINCT query_id) FILTER (WHERE run_id = $base) AS baseline,
               count(DISTINCT query_id) FILTER (WHERE run_id = $run) AS current
        FROM diagnoses SEMI JOIN shared USING (query_id) WHERE run_id IN ($base, $run)
        GROUP BY cause ORDER BY current DESC, baseline DESC, cause""",
                 {"run": run_id, "base": baseline_run_id})
