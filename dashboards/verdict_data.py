"""The stored verdict of a run as the dashboard shows it: the gates with their status, the
overall status (passed, failed, not evaluated, or not gated), and the baseline it was
compared with, if any.

A run is shown against a baseline only when its verdict stored one: never a baseline the
dashboard picks itself (a run made with ``--baseline none`` has none), and never one that
shares too few of the run's queries (deltas between unrelated query sets mean nothing).

Stores differ in age. The newest keep every verdict (``verdicts``) and each gate's
``status``; older ones only ``gates.passed`` and ``runs.gate_status``, where a relative gate
without a value and "passed" was in truth not evaluated (it had no baseline): the readers
derive the same statuses from both, and check an old stored baseline's share of queries.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

from auditor.metrics.registry import lower_is_better
from auditor.store.read import dashboard_runs as reads
from auditor.store.read.dashboard_runs import GATE_COLUMNS
from auditor.verdict import Verdict, gate_from_row
from dashboards.data import TTL, Source, run_details, run_row

MIN_SHARED = 0.5  # default share of the run's queries a baseline must hold (baseline_min_shared)


@st.cache_data(ttl=TTL, show_spinner=False)
def gates(src: Source, run_id: str) -> pd.DataFrame:
    """The run's gates with their status, failed first (none for a run never gated)."""
    return reads.gates(src.path, run_id)


def overall(gate_rows: pd.DataFrame) -> str:
    """Failed if any gate failed, else not evaluated if any was not, else passed."""
    statuses = set(gate_rows["status"])
    return next((s for s in ("failed", "not_evaluated") if s in statuses), "passed")


def verdicts(src: Source, run_id: str) -> pd.DataFrame:
    """Every verdict stored for the run, newest first."""
    return reads.verdicts(src.path, run_id)


def shared_share(src: Source, run_id: str, baseline_run_id: str) -> float:
    """Share of the run's queries that the baseline also answered."""
    return reads.shared_share(src.path, run_id, baseline_run_id)


def min_shared(config: dict[str, Any]) -> float:
    value = config.get("baseline_min_shared")
    return MIN_SHARED if value is None else float(value)


@st.cache_data(ttl=TTL, show_spinner=False)
def shown(src: Source, run_id: str) -> Verdict:
    """The run's verdict: the newest stored one, else what its gates say (runs gated before
    verdicts were kept); ``gate_status`` None when the run was not gated."""
    gate_rows = gates(src, run_id)
    history = verdicts(src, run_id)
    config = run_details(src, run_id).get("config") or {}
    run = run_row(src, run_id)
    if len(history):
        latest = history.iloc[0]
        reason = latest["baseline_reason"] if isinstance(latest["baseline_reason"], str) else None
        base = latest["baseline_run_id"] if isinstance(latest["baseline_run_id"], str) else None
        return _verdict(run_id, run, gate_rows, str(latest["gate_status"]), base,
                        reason or _no_base(config), _listed(latest["warnings"]), len(history))
    if not len(gate_rows):
        return _verdict(run_id, run, gate_rows, run.get("gate_status"), None,
                        _no_base(config) or "this run was not gated")
    base, reason = run.get("baseline_run_id"), None
    if base is None:
        skipped = gate_rows[gate_rows["status"] == "not_evaluated"]
        reason = _no_base(config) or (_without_metric(skipped.iloc[0]) if len(skipped) else None)
    else:
        share, needed = shared_share(src, run_id, base), min_shared(config)
        if share < needed:
            reason = (f"the stored baseline {base} shares {share:.0%} of this run's queries "
                      f"(needs {needed:.0%}): not comparable")
            base = None
    return _verdict(run_id, run, gate_rows, overall(gate_rows), base, reason)


def _verdict(run_id: str, run: dict[str, Any], gate_rows: pd.DataFrame, status: str | None,
             base: str | None, reason: str | None, warnings: list[str] | None = None,
             verdicts: int = 0) -> Verdict:
    """The verdict read model (``auditor.verdict``) from the rows the dashboard read."""
    return Verdict(
        run_id=run_id, status=str(run.get("status")), baseline_run_id=base, comparison=None,
        gates=tuple(gate_from_row(row) for row in gate_rows.to_dict("records")),
        judged=status is not None, status_reason=run.get("status_reason"),
        baseline_reason=reason, warnings=tuple(warnings or ()), number=verdicts or None)


def gate_table(verdict: Verdict) -> pd.DataFrame:
    """The verdict's gates as a table (failed first, as stored)."""
    return pd.DataFrame([asdict(g) for g in verdict.gates], columns=GATE_COLUMNS)


def _listed(value: Any) -> list[str]:
    """Warnings as stored: a JSON list (text), or a list already."""
    if isinstance(value, str):
        return [str(w) for w in json.loads(value) or []]
    return [str(w) for w in value] if value is not None and len(value) else []


def _without_metric(gate: pd.Series) -> str:
    """A gate's reason without its leading "metric: " (the reason of the whole verdict)."""
    reason = str(gate["reason"])
    return reason.removeprefix(f"{gate['metric']}: ")


def _no_base(config: dict[str, Any]) -> str | None:
    if "baseline" in config and config["baseline"] is None:
        return "the run was made with `--baseline none`: nothing to compare with"
    return None


def baseline(src: Source, run_id: str) -> str | None:
    """The run the Overview compares with: the comparable baseline its verdict stored."""
    return shown(src, run_id).baseline_run_id


def gated_metrics(src: Source, run_id: str, k: int) -> list[tuple[str, str | None]]:
    """The metrics the run's gates judge, failed first, each with its gates' worst status;
    without stored gates those the run's config names; else recall@k."""
    rows = gates(src, run_id)
    rows = rows[rows["metric"] != "status"]  # "run is complete" is no metric
    if len(rows):
        worst = rows.groupby("metric", sort=False)["status"].first()
        return list(worst.items())
    configured = (run_details(src, run_id).get("config") or {}).get("gates") or []
    names = list(dict.fromkeys(g["metric"] for g in configured if g.get("metric")))
    return [(name, None) for name in names] or [(f"recall@{k}", None)]


@st.cache_data(ttl=TTL, show_spinner=False)
def stored_comparison(src: Source, run_id: str) -> pd.DataFrame:
    """The metric deltas stored when the run was gated against its baseline (the numbers
    the gates used)."""
    df = reads.comparison_rows(src.path, run_id)
    df["lower_is_better"] = df["metric"].map(lower_is_better).astype(bool)
    return df
