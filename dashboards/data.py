"""The dashboard's reads: ``auditor.store.read`` functions cached per store version.

Every reader opens a short read-only connection and closes it before returning (see
``auditor.store.read.dashboard_frames``), so the nightly writer never waits for a browser
tab. Results (never connections) are cached with ``st.cache_data``, keyed by the store's path and
modification time (``Source``), so a new nightly run shows up without a restart. Aggregation,
sorting and paging happen in SQL: no reader hands a widget more than a page of rows.

This module holds the shared readers (runs, metric summaries, causes, segments);
``dashboards.query_data`` the per-query ones, ``dashboards.corpus_data`` corpus and scatter,
``dashboards.verdict_data`` the gates and verdicts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from auditor.metrics.registry import bounded, lower_is_better
from auditor.store import Store, StoreError
from auditor.store.read import dashboard_causes as cause_reads
from auditor.store.read import dashboard_metrics as metric_reads
from auditor.store.read import dashboard_runs as run_reads
from auditor.store.read import dashboard_segments as segment_reads
from auditor.store.read.dashboard_causes import Causes
from auditor.store.read.dashboard_segments import WHOLE_RUN, Segment
from auditor.store.read.sample import sampled_run

__all__ = ["Causes", "Segment"]

TTL = 600  # seconds: a changed store is noticed through its version before this anyway
Z95 = 1.959964  # normal quantile of a two-sided 95% interval
TREND_RUNS = 30


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


# segments ------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def segment_values(src: Source, run_id: str, limit: int = 50) -> dict[str, list[str]]:
    """Metadata keys of a run's queries with their most frequent values."""
    return segment_reads.segment_values(src.path, run_id, limit)


@st.cache_data(ttl=TTL, show_spinner=False)
def logged_range(src: Source, run_id: str) -> tuple[datetime | None, datetime | None]:
    """First and last logged time of the run's queries (UTC), whole minutes."""
    return segment_reads.logged_range(src.path, run_id)


# runs ------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def _stored_runs(src: Source) -> pd.DataFrame:
    df = run_reads.runs(src.path)
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


@st.cache_data(ttl=TTL, show_spinner=False)
def sample(src: Source, run_id: str, metrics: tuple[str, ...]) -> dict[str, Any] | None:
    """A sampled run's design and the stratified estimates of ``metrics`` (None: the run
    audited the whole log)."""
    manifest = run_details(src, run_id).get("manifest")
    found = sampled_run(Store(Path(src.path)), run_id, manifest, list(metrics))
    return None if found is None else found.as_json()


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
                   segment: Segment = WHOLE_RUN) -> pd.DataFrame:
    """Mean, n (queries where defined), undefined count and 95% CI of each metric."""
    return _with_ci(metric_reads.metric_summary(src.path, run_id, metrics, segment))


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
    return _with_ci(metric_reads.metric_trend(src.path, run_ids, metrics))


@st.cache_data(ttl=TTL, show_spinner=False)
def regressed(src: Source, baseline_run_id: str, run_id: str, metric: str,
              limit: int = 10) -> pd.DataFrame:
    """Queries whose ``metric`` got worst against the baseline, with their causes now."""
    return metric_reads.regressed(src.path, baseline_run_id, run_id, metric,
                                  lower_is_better=lower_is_better(metric), limit=limit)


@st.cache_data(ttl=TTL, show_spinner=False)
def failing(src: Source, run_id: str, metric: str, limit: int = 10) -> pd.DataFrame:
    """Queries with the worst ``metric`` in the run, most causes first."""
    return metric_reads.failing(src.path, run_id, metric, limit=limit,
                                lower_is_better=lower_is_better(metric),
                                bounded=bounded(metric))


# causes ----------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def causes(src: Source, run_id: str, segment: Segment = WHOLE_RUN) -> Causes:
    """Queries (and targets) per failure cause in the segment; drifted queries apart."""
    return cause_reads.causes(src.path, run_id, segment)


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_trend(src: Source, run_ids: tuple[str, ...],
                segment: Segment = WHOLE_RUN) -> pd.DataFrame:
    """Share of each run's (segment's) queries per failure cause, oldest first."""
    return cause_reads.cause_trend(src.path, run_ids, segment)


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_examples(src: Source, run_id: str, segment: Segment = WHOLE_RUN,
                   limit: int = 5) -> pd.DataFrame:
    """A few queries per cause (most targets first), each with its first row of evidence."""
    return cause_reads.cause_examples(src.path, run_id, segment, limit)


@st.cache_data(ttl=TTL, show_spinner=False)
def cause_changes(src: Source, baseline_run_id: str, run_id: str) -> pd.DataFrame:
    """Queries per cause in the baseline and in the run, over the queries both answered."""
    return cause_reads.cause_changes(src.path, baseline_run_id, run_id)
