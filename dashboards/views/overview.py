"""Overview: the run's headline numbers with n and 95% CI, its gate verdict and reasons,
trends across runs, what changed since the baseline, and the queries to look at first."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from auditor.gates import lower_is_better
from dashboards import charts, data, widgets
from dashboards.data import Source


def gate_verdict(src: Source, run: dict[str, Any]) -> None:
    gates = data.gates(src, run["run_id"])
    status = run.get("gate_status")
    if status == "failed":
        failed = gates[~gates["passed"]]
        st.error(f"**Gates failed** ({len(failed)} of {len(gates)})", icon=":material/block:")
        for row in failed.itertuples():
            st.markdown(f"- :red[**{widgets.escape_md(row.gate)}**]: "
                        f"{widgets.escape_md(row.reason)}")
    elif status == "passed":
        st.success(f"**Gates passed** ({len(gates)})", icon=":material/check_circle:")
    else:
        st.info("This run was not gated (no `auditor nightly` verdict stored).",
                icon=":material/info:")
    if len(gates):
        with st.expander("Every gate"):
            widgets.table(gates, key="gates", file_name=f"gates-{run['run_id']}.csv")


def headline(src: Source, run: dict[str, Any], base: str | None) -> pd.DataFrame:
    """The headline metrics as cards with their change since the baseline; returns them."""
    metrics = tuple(data.headline_metrics(int(run["k"])))
    now = data.metric_summary(src, run["run_id"], metrics)
    now = now[now["n"] > 0]
    before = (data.metric_summary(src, base, metrics).set_index("metric")["mean"]
              if base else pd.Series(dtype=float))
    columns = st.columns(5)
    for i, row in enumerate(now.itertuples()):
        previous = before.get(row.metric)
        delta = None if previous is None or pd.isna(previous) else row.mean - previous
        columns[i % 5].metric(
            row.metric, widgets.number(row.mean),
            delta=None if delta is None else f"{delta:+.3f}",
            delta_color="inverse" if lower_is_better(row.metric) else "normal",
            help=f"mean over n = {row.n:,} queries ({row.undefined:,} undefined); "
                 f"95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}]"
                 + ("; change vs the baseline" if delta is not None else ""),
            border=True,
        )
        columns[i % 5].caption(f"n {row.n:,} · 95% CI {row.ci_low:.3f}–{row.ci_high:.3f}")
    return now


def trends(src: Source, k: int) -> None:
    metrics = data.trend_metrics(k)
    df = data.trend(src, tuple(metrics))
    st.subheader("Across runs")
    if df["run_id"].nunique() < 2:
        st.caption("One run so far: trends appear from the second run on.")
    st.plotly_chart(charts.trend(df, metrics), key="trend")
    st.caption(f"Mean per run (newest {data.TREND_RUNS} runs) with its 95% CI; markers: "
               "green = gates passed, red = failed, grey = not gated.")


def changes(src: Source, run: dict[str, Any], base: str | None) -> None:
    st.subheader("What changed since the baseline")
    if base is None:
        st.caption("No baseline: no other complete run of the same backend, mode and level.")
        return
    stored = data.stored_comparison(src, run["run_id"])
    left, right = st.columns(2)
    with left:
        if len(stored):
            st.plotly_chart(charts.deltas(stored), key="deltas")
            st.caption(f"Paired over the queries both runs answered, against `{base}`; "
                       "green/red = significant (Holm p < 0.05) improvement/regression.")
        else:
            st.caption("No paired comparison was stored with this run: open Compare runs "
                       "for deltas with confidence intervals.")
        widgets.link("compare", "Compare runs in detail", run["run_id"],
                     icon=":material/compare_arrows:")
    with right:
        causes = data.cause_changes(src, base, run["run_id"])
        if len(causes):
            st.plotly_chart(charts.grouped_bars(causes, "cause", ["baseline", "current"],
                                                "Queries per cause"), key="cause_changes")
            st.caption("Over the queries both runs answered.")


def to_look_at(src: Source, run: dict[str, Any], base: str | None, judged: bool,
               limit: int = 6) -> None:
    """The regressed queries first (against the baseline), then the lowest-scoring ones;
    ``judged``: whether recall@k is defined for any query of the run."""
    metric = f"recall@{int(run['k'])}"
    st.subheader("Queries to look at")
    regressed = data.regressed(src, base, run["run_id"], metric, limit) if base else None
    failing = data.failing(src, run["run_id"], metric, limit)
    shown = 0 if regressed is None else len(regressed)
    if shown:
        st.caption(f"Largest drop in {metric} since `{base}` (of all queries that dropped):")
        widgets.query_links(regressed, run["run_id"], lambda r: (
            f"{metric} {r['baseline']:.2f} → {r['current']:.2f} · "
            + widgets.escape_md(r["causes"] or "no cause recorded")))
        failing = failing[~failing["query_id"].isin(regressed["query_id"])]
    if len(failing):
        st.caption(f"Lowest {metric} in this run:")
        widgets.query_links(failing.head(max(limit - shown, 3)), run["run_id"],
                            lambda r: f"{metric} {r['current']:.2f} · "
                                      + widgets.escape_md(r["causes"] or "no cause recorded"))
    elif not shown and judged:
        st.success(f"Every judged query has {metric} = 1.")
    elif not shown:
        st.info(f"This run has no judgments: no query has a {metric} to rank by.")
    widgets.link("queries", "All queries in the explorer", run["run_id"],
                 icon=":material/search:")


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    base = data.default_baseline(src, run["run_id"])
    st.title("Overview")
    st.caption(f"Run `{run['run_id']}` · {run['status']} · {run['backend']} {run['mode']} · "
               f"{int(run['queries'] or 0):,} queries · metrics at k = {int(run['k'])}"
               + (f" · baseline `{base}`" if base else ""))
    gate_verdict(src, run)
    now = headline(src, run, base)
    judged = f"recall@{int(run['k'])}" in set(now["metric"])
    to_look_at(src, run, base, judged)
    trends(src, int(run["k"]))
    changes(src, run, base)

main()
