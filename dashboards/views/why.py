"""Why retrieval fails: queries per cause (count and share, and across runs), each cause
with its rule in plain words and example queries, for a metadata segment and time window."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from auditor.diagnose import CAUSES, RULES
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


def breakdown(src: Source, run_id: str, segment: Segment) -> pd.DataFrame:
    size, diagnosed, counts = data.causes(src, run_id, segment)
    st.caption(f"{size:,} queries in {'this segment' if segment.active else 'the run'}; "
               f"{diagnosed:,} ({diagnosed / max(size, 1):.0%}) have at least one cause. "
               "A query can have several causes.")
    if counts.empty:
        st.success("No query in this segment has a failure cause.")
        return counts
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.cause_bars(counts), key="cause_bars")
    with right:
        widgets.table(counts, key="cause_counts", file_name=f"causes-{run_id}.csv",
                      column_config={"share": st.column_config.ProgressColumn(
                          "share", format="percent", min_value=0.0, max_value=1.0),
                          "targets": st.column_config.NumberColumn(
                              "targets", help="missed documents behind the cause")})
    return counts


def trend(src: Source, segment: Segment) -> None:
    df = data.cause_trend(src, segment)
    st.subheader("Across runs")
    if df["run_id"].nunique() < 2:
        st.caption("One run so far: the trend appears from the second run on.")
    st.plotly_chart(charts.cause_trend(df), key="cause_trend")


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
        df = pd.DataFrame({"cause": list(CAUSES), "rule": [RULES[c] for c in CAUSES],
                           "queries": [seen.get(c, 0) for c in CAUSES]})
        widgets.table(df, key="rules", column_config={"rule": st.column_config.TextColumn(
            "rule", width="large")})


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    segment = widgets.segment_filter(src, run["run_id"])
    st.title("Why retrieval fails")
    counts = breakdown(src, run["run_id"], segment)
    if len(counts):
        examples(src, run["run_id"], segment, counts)
    trend(src, segment)
    rules_table(counts)


main()
