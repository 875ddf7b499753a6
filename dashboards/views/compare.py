"""Compare runs: any two runs paired on their shared queries (``auditor.compare``): metric
deltas with bootstrap CIs and Holm-adjusted p, regressed and improved queries, new and
resolved causes, and drift of the result lists (overlap@k, RBO).

The current run follows the sidebar; the baseline defaults to the one its verdict stored
(as on the Overview), else the newest comparable run. For the stored pair the metric table
shows the deltas stored when the run was gated: the numbers the gates used. A pair of runs
that are not comparable (other backend, mode, level or log, or too few shared queries) is
shown with a warning and no better/worse colours."""

from __future__ import annotations

from dataclasses import asdict, fields

import pandas as pd
import streamlit as st

from auditor.cases import DRIFT
from auditor.compare import Comparison, MetricDelta
from dashboards import charts, data, verdict_data, widgets
from dashboards.compare_data import RESAMPLES, comparison
from dashboards.data import Source


def pick_pair(src: Source, run: dict) -> tuple[str, str] | None:
    df = data.runs(src)
    ids = list(df["run_id"])
    if len(ids) < 2:
        st.info("Only one run so far: a comparison needs two.")
        return None
    labels = {row["run_id"]: widgets.run_label(row, group=True)
              for row in df.to_dict("records")}
    left, right = st.columns(2)
    current = right.selectbox("Current", ids, index=ids.index(run["run_id"]),
                              format_func=labels.__getitem__,
                              key=f"cmp_current_{run['run_id']}")  # follows the sidebar
    group_of = dict(zip(df["run_id"], df["group"], strict=True))
    # comparable runs (same backend, mode, level and log) first, newest first in each part
    others = sorted((i for i in ids if i != current),
                    key=lambda i: group_of[i] != group_of[current])
    stored = verdict_data.baseline(src, current)
    default = stored if stored in others else others[0]
    base = left.selectbox("Baseline", others, index=others.index(default),
                          format_func=labels.__getitem__, key=f"cmp_base_{current}")
    return base, current


def comparable_note(src: Source, base: str, current: str) -> str | None:
    """Why the pair is no fair comparison (other group, or too few shared queries), or None;
    the run's own stored baseline is comparable by its verdict."""
    if verdict_data.baseline(src, current) == base:
        return None
    a, b = data.run_row(src, base), data.run_row(src, current)
    if a["group"] != b["group"]:
        return (f"the baseline is a run of {a['group']}, the current one of {b['group']}: "
                "other backend, mode, level or log")
    config = data.run_details(src, current).get("config") or {}
    share, needed = verdict_data.shared_share(src, current, base), verdict_data.min_shared(config)
    if share < needed:
        return f"the runs share {share:.0%} of the current run's queries (needs {needed:.0%})"
    return None


def metric_frame(result: Comparison) -> pd.DataFrame:
    rows = [asdict(m) for m in result.metrics]
    return pd.DataFrame(rows, columns=[f.name for f in fields(MetricDelta)])


def metric_table(src: Source, result: Comparison) -> tuple[pd.DataFrame, str]:
    """The metric deltas and how they were computed: the stored comparison when the pair is
    the run and the baseline it was gated against, else the comparison computed here."""
    stored = verdict_data.stored_comparison(src, result.run_id)
    if len(stored) and (stored["baseline_run_id"] == result.baseline_run_id).all():
        return (stored.drop(columns="baseline_run_id"),
                "metrics: the comparison stored when the run was gated (the numbers its gates "
                "used, with the gate's bootstrap resamples)")
    return (metric_frame(result),
            f"metrics: paired bootstrap 95% CIs ({RESAMPLES:,} resamples), Holm-adjusted "
            "sign-flip p")


def query_changes(rows: list, total: int, title: str, key: str, run_id: str) -> None:
    st.markdown(f"**{title}** · {total:,} queries" + (f" (first {len(rows):,})"
                                                       if total > len(rows) else ""))
    if not rows:
        st.caption("None.")
        return
    df = pd.DataFrame([asdict(r) for r in rows])
    for column in ("causes_before", "causes_after"):
        df[column] = df[column].map(", ".join)
    widgets.table(df, key=key, file_name=f"{key}-{run_id}.csv", height=260,
                  column_config={"query": st.column_config.TextColumn("query", width="medium")})
    widgets.query_links(df.head(3), run_id, lambda r: (
        f"{r['metric']} {r['baseline']:.2f} → {r['current']:.2f}"
        f" · causes now: {widgets.escape_md(r['causes_after'] or 'none')}"))


def drift(result: Comparison) -> None:
    d = result.drift
    st.subheader("Drift of the result lists")
    if d.get("not_evaluated"):
        st.info(f"Not evaluated: {d['not_evaluated']}.")
        return
    cols = st.columns(4)
    cols[0].metric(f"overlap@{d['k']}", widgets.number(d.get("overlap")), border=True)
    cols[1].metric("RBO", widgets.number(d.get("rbo")), border=True)
    cols[2].metric("lists changed", f"{d.get('changed', 0):,}", border=True,
                   help=f"shared queries whose top {d['k']} documents differ")
    cols[3].metric("queries compared", f"{d.get('n', 0):,}", border=True)
    worst = pd.DataFrame(d.get("worst") or [])
    if len(worst):
        st.caption("Most changed lists:")
        widgets.table(worst, key="drift_worst", file_name="drift.csv", height=260,
                      column_config={"query": st.column_config.TextColumn("query",
                                                                          width="large")})


def causes(result: Comparison) -> None:
    """Failure causes before and after; drift (no failure) apart, in a line of its own."""
    st.subheader("Causes of failure")
    counts = pd.DataFrame(result.cause_counts, columns=["cause", "baseline", "current"])
    drift = counts[counts["cause"] == DRIFT]
    counts = counts[counts["cause"] != DRIFT]
    left, right = st.columns([3, 2])
    with left:
        if len(counts):
            st.plotly_chart(charts.grouped_bars(counts, "cause", ["baseline", "current"],
                                                "Queries per failure cause"), key="cmp_causes")
        if len(drift):
            st.caption(f"Drift, not a failure: production served different results than the "
                       f"index returns today for {int(drift['current'].iloc[0]):,} shared "
                       f"queries now, {int(drift['baseline'].iloc[0]):,} in the baseline.")
    with right:
        for title, rows, total in (
                ("New causes", result.new_causes, result.new_causes_total),
                ("Resolved causes", result.resolved_causes, result.resolved_causes_total)):
            failures = [r for r in rows if r.cause != DRIFT]
            every = len(rows) == total  # all listed: the drift pairs can be taken out
            shown = (f"{total - (len(rows) - len(failures)):,}" if every
                     else f"{total:,} (drift included)")
            st.markdown(f"**{title}** · {shown}")
            if failures:
                widgets.table(pd.DataFrame([asdict(r) for r in failures]), key=title,
                              height=200)


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    st.title("Compare runs")
    pair = pick_pair(src, run)
    if pair is None:
        return
    k = int(data.run_row(src, pair[1])["k"])  # the current run's cut-off
    result = comparison(src, pair[0], pair[1], k)
    deltas, how = metric_table(src, result)
    note = comparable_note(src, *pair)
    if note:
        st.warning(f"Not a comparable pair: {widgets.escape_md(note)}. The changes below "
                   "are shown for reading, never as better or worse.", icon=":material/warning:")
    st.caption(f"{result.shared_queries:,} shared queries · {result.only_baseline:,} only in "
               f"the baseline · {result.only_current:,} only in the current run · {how}")
    if not result.shared_queries:
        st.info("The two runs share no query: there is nothing to pair.")
        return
    if deltas.empty:
        st.info(f"The two runs share no headline metric at k = {k} (a run without judgments "
                "or answers, or one that failed): only causes and drift are compared.")
        causes(result)
        drift(result)
        return
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(charts.deltas(deltas, judged=note is None), key="cmp_deltas")
    with right:
        widgets.table(deltas, key="cmp_metrics", file_name="deltas.csv",
                      column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in
                                     ("baseline_mean", "current_mean", "delta", "ci_low",
                                      "ci_high", "p_value", "p_holm")})
    st.subheader("Queries")
    query_changes(result.regressed, result.regressed_total, "Regressed", "regressed", pair[1])
    query_changes(result.improved, result.improved_total, "Improved", "improved", pair[1])
    causes(result)
    drift(result)


main()
