"""Why retrieval fails: queries per failure cause (count and share, and across comparable
runs), each cause with its rule in plain words and example queries, for a metadata segment
and time window. Drift (production served other results than the index returns today) is no
failure: it is counted apart and left out of the shares."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from auditor.cases import CAUSES, DRIFT
from auditor.diagnose import RULES
from dashboards import charts, data, widgets
from dashboards.data import Segment, Source


def evidence_line(evidence: dict[str, Any], limit: int = 6) -> str:
    """A short, escaped 'key=value' summary of a diagnosis' evidence."""
    parts = []
    for key, value in list(evidence.items())[:limit]:
        if value is None:
            continue
        if isinstance(value, float):
            text = f"{value:.3f}"
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
    return widgets.escape_md(", ".join(parts))


DRIFT_TEXT = ("production served different results than the index returns today: a "
              "difference between then and now, not a retrieval failure")


def breakdown(src: Source, run_id: str, segment: Segment) -> data.Causes:
    found = data.causes(src, run_id, segment)
    size, diagnosed, counts = found.size, found.diagnosed, found.counts
    st.caption(f"{size:,} queries in {'this segment' if segment.active else 'the run'}; "
               f"{diagnosed:,} ({diagnosed / max(size, 1):.0%}) have at least one failure "
               "cause. A query can have several causes. Drift is counted apart, below.")
    if counts.empty:
        st.success("No query in this segment has a failure cause.")
        return found
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.cause_bars(counts), key="cause_bars")
    with right:
        widgets.table(counts, key="cause_counts", file_name=f"causes-{run_id}.csv",
                      column_config={"share": st.column_config.ProgressColumn(
                          "share", format="percent", min_value=0.0, max_value=1.0),
                          "targets": st.column_config.NumberColumn(
                              "targets", help="missed documents behind the cause")})
    return found


def drift(src: Source, run_id: str, segment: Segment, found: data.Causes) -> None:
    """Drift apart from the failure causes: what it means, how many, a few examples."""
    st.subheader("Drift")
    if not found.drifted:
        st.caption("Production served what the index returns today for every query with a "
                   "logged served list (no drift).")
        return
    st.markdown(f"Production served different results than the index returns today for "
                f"**{found.drifted:,} queries** ({found.drifted / max(found.size, 1):.0%}). "
                "This is drift, not a retrieval failure: the index, its settings or the "
                "documents changed since the log was written. It does not count in the "
                "shares of failure above.")
    with st.expander(f"{DRIFT} · {found.drifted:,} queries"):
        st.markdown(f"**Rule:** {widgets.escape_md(RULES.get(DRIFT, ''))}")
        every = data.cause_examples(src, run_id, segment)
        widgets.query_links(every[every["cause"] == DRIFT], run_id,
                            lambda r: evidence_line(r["evidence"]))


def trend(src: Source, run: dict[str, Any], segment: Segment) -> None:
    runs = data.comparable(src, run["run_id"])
    df = data.cause_trend(src, tuple(runs["run_id"]), segment)
    st.subheader("Across comparable runs")
    if df["run_id"].nunique() < 2:
        st.caption("One comparable run so far: the trend appears from the second run on.")
    st.plotly_chart(charts.cause_trend(df), key="cause_trend")
    st.caption(f"Runs of {widgets.escape_md(run['group'])}; the dotted line is drift, "
               "which is not a failure.")


def examples(src: Source, run_id: str, segment: Segment, counts: pd.DataFrame) -> None:
    st.subheader("Each cause, its rule and examples")
    every = data.cause_examples(src, run_id, segment)
    for row in counts.itertuples():
        with st.expander(f"{row.cause} · {row.queries:,} queries ({row.share:.0%})",
                         expanded=row.Index == 0):
            st.markdown(f"**Rule:** {widgets.escape_md(RULES.get(row.cause, ''))}")
            df = every[every["cause"] == row.cause]
            widgets.query_links(df, run_id, lambda r: (
                (f"targets {widgets.escape_md(r['targets'])} · "
                 if isinstance(r["targets"], str) else "")
                + evidence_line(r["evidence"])))


def rules_table(counts: pd.DataFrame) -> None:
    with st.expander("Every cause and its rule"):
        seen = dict(zip(counts["cause"], counts["queries"], strict=True)) if len(counts) else {}
        causes = [c for c in CAUSES if c != DRIFT]
        df = pd.DataFrame({"cause": causes, "rule": [RULES[c] for c in causes],
                           "queries": [seen.get(c, 0) for c in causes]})
        widgets.table(df, key="rules", column_config={"rule": st.column_config.TextColumn(
            "rule", width="large")})
        st.caption(f"Not a cause of failure: {DRIFT}, {DRIFT_TEXT}.")


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    segment = widgets.segment_filter(src, run["run_id"])
    st.title("Why retrieval fails")
    found = breakdown(src, run["run_id"], segment)
    if len(found.counts):
        examples(src, run["run_id"], segment, found.counts)
    drift(src, run["run_id"], segment, found)
    trend(src, run, segment)
    rules_table(found.counts)


main()
