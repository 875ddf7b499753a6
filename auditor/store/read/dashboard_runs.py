"""The dashboard's run reads: every run with its shown gate status, a run's gates and stored
verdicts, and how many of its queries a baseline shares.

A run's shown gate status is its newest stored verdict, else what its gate rows say, else
``runs.gate_status``. An older store is upgraded before it is read (see ``auditor migrate``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from auditor.store.read.dashboard_frames import frame

# A gate row's status; a row appended without one reads as migration m006 backfills it: a
# relative gate that passed without a value had no baseline, so it was not evaluated.
GATE_STATUS = ("coalesce(status, CASE WHEN NOT passed THEN 'failed' WHEN kind = 'max_drop' "
               "AND value IS NULL THEN 'not_evaluated' ELSE 'passed' END)")
STATUS_ORDER = {"failed": 0, "not_evaluated": 1, "passed": 2}
GATE_COLUMNS = ["gate", "metric", "kind", "status", "value", "threshold", "baseline_run_id",
                "reason"]
VERDICT_COLUMNS = ["created_at", "gate_status", "baseline_run_id", "baseline_reason",
                   "warnings"]


def runs(path: Path | str) -> pd.DataFrame:
    """Every run as stored, newest first, with its query count, diagnosis cut-off ``k``, log
    and shown gate status (a run still ``running`` is shown as ``Store.runs`` says)."""
    return frame(path, f"""
        WITH v AS (SELECT run_id, arg_max(gate_status, created_at) AS status
                   FROM verdicts GROUP BY run_id),
             g AS (SELECT run_id, CASE WHEN bool_or(s = 'failed') THEN 'failed'
                                       WHEN bool_or(s = 'not_evaluated') THEN 'not_evaluated'
                                       ELSE 'passed' END AS status
                   FROM (SELECT run_id, {GATE_STATUS} AS s FROM gates) GROUP BY run_id)
        SELECT r.run_id, r.started_at, r.finished_at, r.status, r.status_reason,
               coalesce(v.status, g.status, r.gate_status) AS gate_status, r.baseline_run_id,
               r.backend, r.mode, r.level, r.config ->> 'log' AS log,
               TRY_CAST(r.counts ->> 'replayed' AS BIGINT) AS queries,
               coalesce(TRY_CAST(r.config ->> 'diagnose_k' AS INTEGER), 10) AS k
        FROM runs r LEFT JOIN v USING (run_id) LEFT JOIN g USING (run_id)
        ORDER BY r.started_at DESC""")


def gates(path: Path | str, run_id: str) -> pd.DataFrame:
    """The run's gates with their status, failed first."""
    df = frame(path, f"""
        SELECT gate, metric, kind, {GATE_STATUS} AS status, value, threshold,
               baseline_run_id, reason FROM gates WHERE run_id = $run""", {"run": run_id})
    df["order"] = df["status"].map(STATUS_ORDER).fillna(3)
    return df.sort_values(["order", "gate"]).drop(columns="order").reset_index(drop=True)


def verdicts(path: Path | str, run_id: str) -> pd.DataFrame:
    """Every verdict stored for the run, newest first."""
    return frame(path, f"SELECT {', '.join(VERDICT_COLUMNS)} FROM verdicts "
                       "WHERE run_id = $run ORDER BY created_at DESC, verdict_id DESC",
                 {"run": run_id})


def comparison_rows(path: Path | str, run_id: str) -> pd.DataFrame:
    """The metric deltas stored when the run was gated against its baseline."""
    columns = ["baseline_run_id", "metric", "n", "baseline_mean", "current_mean", "delta",
               "ci_low", "ci_high", "p_value", "p_holm"]
    return frame(path, f"SELECT {', '.join(columns)} FROM comparisons "
                       "WHERE run_id = $run ORDER BY metric", {"run": run_id})


def shared_share(path: Path | str, run_id: str, baseline_run_id: str) -> float:
    """Share of the run's queries that the baseline also answered."""
    row = frame(path, """
        SELECT count(b.query_id) AS shared, count(*) AS n
        FROM (SELECT DISTINCT query_id FROM query_results WHERE run_id = $run) q
        LEFT JOIN (SELECT DISTINCT query_id FROM query_results WHERE run_id = $base) b
        USING (query_id)""", {"run": run_id, "base": baseline_run_id}).iloc[0]
    return float(row["shared"]) / max(int(row["n"]), 1)
