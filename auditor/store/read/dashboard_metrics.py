"""The dashboard's metric reads: per-run summaries (mean, n, undefined, spread) over a
segment, the same over a group of runs for the trend, and the queries behind a metric (the
most regressed against a baseline, the worst now), each with its failure causes.

Drift (production served other results than the index returns today) is no failure: it is
left out wherever causes are listed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from auditor.cases import DRIFT
from auditor.store.read.dashboard_frames import frame
from auditor.store.read.dashboard_segments import WHOLE_RUN, Segment

_METRIC_NAME = re.compile(r"^[a-z_]+(@\d+)?$")
# Causes of failure per query of run $run, drift apart.
CAUSES_CTE = ("c AS (SELECT query_id, string_agg(DISTINCT cause, ', ' ORDER BY cause) AS causes, "
              "count(DISTINCT cause) AS n_causes FROM diagnoses WHERE run_id = $run "
              "AND cause <> $drift GROUP BY query_id)")


def metric_sql_name(metric: str) -> str:
    """A metric name checked for use as a quoted SQL identifier."""
    if not _METRIC_NAME.match(metric):
        raise ValueError(f"not a metric name: {metric!r}")
    return f'"{metric}"'


def metric_summary(path: Path | str, run_id: str, metrics: tuple[str, ...],
                   segment: Segment = WHOLE_RUN) -> pd.DataFrame:
    """Mean, n (queries where defined), undefined count and standard deviation of each
    metric over the segment's queries, in the order of ``metrics``."""
    where, params = segment.where()
    df = frame(path, f"""
        SELECT m.metric, avg(m.value) AS mean, count(m.value) AS n,
               count(*) - count(m.value) AS undefined, stddev_samp(m.value) AS sd
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        WHERE m.run_id = $run AND list_contains($metrics, m.metric) AND {where}
        GROUP BY m.metric""", {"run": run_id, "metrics": list(metrics), **params})
    order = {name: i for i, name in enumerate(metrics)}
    return df.sort_values("metric", key=lambda s: s.map(order)).reset_index(drop=True)


def metric_trend(path: Path | str, run_ids: tuple[str, ...], metrics: tuple[str, ...]
                 ) -> pd.DataFrame:
    """Mean, n and standard deviation of each metric in each of the runs, oldest first."""
    return frame(path, """
        SELECT r.run_id, r.started_at, m.metric, avg(m.value) AS mean, count(m.value) AS n,
               stddev_samp(m.value) AS sd
        FROM runs r JOIN metrics m USING (run_id)
        WHERE list_contains($runs, r.run_id) AND list_contains($metrics, m.metric)
        GROUP BY ALL ORDER BY r.started_at, m.metric""",
                 {"runs": list(run_ids), "metrics": list(metrics)})


def regressed(path: Path | str, baseline_run_id: str, run_id: str, metric: str, *,
              lower_is_better: bool, limit: int = 10) -> pd.DataFrame:
    """Queries whose ``metric`` got worst against the baseline, with their causes now."""
    worse, order = (">", "DESC") if lower_is_better else ("<", "ASC")
    return frame(path, f"""
        WITH {CAUSES_CTE}
        SELECT m.query_id, q.query, b.value AS baseline, m.value AS current,
               m.value - b.value AS delta, c.causes
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        JOIN metrics b ON b.run_id = $base AND b.query_id = m.query_id AND b.metric = m.metric
        LEFT JOIN c ON c.query_id = m.query_id
        WHERE m.run_id = $run AND m.metric = $metric AND m.value {worse} b.value
        ORDER BY delta {order}, m.query_id LIMIT $lim""",
                 {"run": run_id, "base": baseline_run_id, "metric": metric, "lim": limit,
                  "drift": DRIFT})


def failing(path: Path | str, run_id: str, metric: str, *, lower_is_better: bool,
            bounded: bool, limit: int = 10) -> pd.DataFrame:
    """Queries with the worst ``metric`` in the run, most causes first: below 1 for a
    bounded metric, else worse than the run's best value."""
    lower = lower_is_better
    best = "1" if bounded and not lower else (
        f"(SELECT {'min' if lower else 'max'}(value) FROM metrics "
        "WHERE run_id = $run AND metric = $metric)")
    return frame(path, f"""
        WITH {CAUSES_CTE}
        SELECT m.query_id, q.query, m.value AS current, c.causes
        FROM metrics m JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
        LEFT JOIN c ON c.query_id = m.query_id
        WHERE m.run_id = $run AND m.metric = $metric AND m.value {'>' if lower else '<'} {best}
        ORDER BY m.value {'DESC' if lower else 'ASC'}, c.n_causes DESC NULLS LAST, m.query_id
        LIMIT $lim""", {"run": run_id, "metric": metric, "lim": limit, "drift": DRIFT})
