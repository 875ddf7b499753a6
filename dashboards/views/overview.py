"""Overview: the run's stored verdict (passed, failed or not evaluated, with the reason), its
headline numbers with n and 95% CI, the queries to look at first for each gated metric,
trends across comparable runs, and what changed since its comparable baseline (none shown
when the verdict stored none)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from auditor.cases import DRIFT
from auditor.metrics.registry import lower_is_better
from auditor.verdict import Verdict
from dashboards import charts, data, verdict_data, widgets
from dashboards.data import Source

STATUS_TITLE = {"passed": "Gates passed", "failed": "Gates failed",
                "not_evaluated": "Gates not evaluated"}


def gate_verdict(src: Source, run: dict[str, Any]) -> Verdict:
    """The banner: passed, failed or not evaluated (with the reason), from the stored
    verdict; the gates behind it; warnings; how many verdicts the run has had."""
    verdict = verdict_data.shown(src, run["run_id"])
    gates, status = verdict.gates, verdict.gate_status
    failed = [g for g in gates if g.status == "failed"]
    if status == "failed":
        st.error(f"**{STATUS_TITLE[status]}** ({len(failed)} of {len(gates)})",
                 icon=":material/block:")
        for gate in failed:
            st.markdown(f"- :red[**{widgets.escape_md(gate.gate)}**]: "
                        f"{widgets.escape_md(gate.reason)}")
    elif status == "not_evaluated":
        st.warning(f"**{STATUS_TITLE[status]}** ({len(verdict.not_evaluated)} of {len(gates)}): "
                   + widgets.escape_md(verdict.baseline_reason or "a gate could not be checked")
                   + ". Nothing failed, but this run is not a pass either.",
                   icon=":material/help:")
        for gate in verdict.not_evaluated:
            st.markdown(f"- :orange[**{widgets.escape_md(gate.gate)}**]: "
                        f"{widgets.escape_md(gate.reason)}")
    elif status == "passed":
        st.success(f"**{STATUS_TITLE[status]}** ({len(gates)})", icon=":material/check_circle:")
    else:
        st.info("This run was not gated (no `auditor gate` verdict stored).",
                icon=":material/info:")
    if status == "failed" and verdict.not_evaluated:
        st.caption("Not evaluated: " + " · ".join(
            widgets.escape_md(f"{gate.gate} ({gate.reason})") for gate in verdict.not_evaluated))
    for warning in verdict.warnings:
        st.warning(widgets.escape_md(warning), icon=":material/warning:")
    if (verdict.number or 0) > 1:
        st.caption(f"The latest of {verdict.number} verdicts on this run (`auditor gate` "
                   "keeps each one).")
    if gates:
        with st.expander("Every gate"):
            widgets.table(verdict_data.gate_table(verdict), key="gates",
                          file_name=f"gates-{run['run_id']}.csv")
    return verdict


def headline(src: Source, run: dict[str, Any], base: str | None) -> pd.DataFrame:
    """The headline metrics as cards with their change since the comparable baseline (the
    paired change the gates used where one is stored); returns them."""
    metrics = tuple(data.headline_metrics(int(run["k"])))
    now = data.metric_summary(src, run["run_id"], metrics)
    now = now[now["n"] > 0]
    changes = pd.Series(dtype=float)
    if base:
        before = data.metric_summary(src, base, metrics).set_index("metric")["mean"]
        changes = now.set_index("metric")["mean"] - before.reindex(now["metric"]).to_numpy()
        stored = verdict_data.stored_comparison(src, run["run_id"])
        stored = stored[stored["baseline_run_id"] == base].set_index("metric")["delta"]
        changes.update(stored)
    columns = st.columns(5)
    for i, row in enumerate(now.itertuples()):
        delta = changes.get(row.metric)
        delta = None if delta is None or pd.isna(delta) else float(delta)
        columns[i % 5].metric(
            row.metric, widgets.number(row.mean),
            delta=None if delta is None else f"{delta:+.3f}",
            delta_color="inverse" if lower_is_better(row.metric) else "normal",
            help=f"mean over n = {row.n:,} queries ({row.undefined:,} undefined); "
                 f"95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}]"
                 + (f"; change vs the baseline {base}" if delta is not None else ""),
            border=True,
        )
        columns[i % 5].caption(f"n {row.n:,} · 95% CI {row.ci_low:.3f}–{row.ci_high:.3f}")
    return now


def trends(src: Source, run: dict[str, Any]) -> None:
    metrics = data.trend_metrics(int(run["k"]))
    df = data.trend(src, run["run_id"], tuple(metrics))
    st.subheader("Across comparable runs")
    if df["run_id"].nunique() < 2:
        st.caption("One comparable run so far: trends appear from the second run on.")
    st.plotly_chart(charts.trend(df, metrics), key="trend")
    st.caption(f"Mean per run with its 95% CI, newest {data.TREND_RUNS} runs of "
               f"{widgets.escape_md(run['group'])} (same backend, mode, level and log "
               f"{widgets.escape_md(run['log'] or '—')}); markers: green = gates passed, "
               "red = failed, amber = not evaluated, grey = not gated.")


def changes(src: Source, run: dict[str, Any], verdict: Verdict) -> None:
    st.subheader("What changed since the baseline")
    base = verdict.baseline_run_id
    if base is None:
        st.caption("No comparable baseline, so no change is shown: "
                   + widgets.escape_md(verdict.baseline_reason or "none was stored with the "
                                       "run's verdict") + ".")
        return
    stored = verdict_data.stored_comparison(src, run["run_id"])
    stored = stored[stored["baseline_run_id"] == base]
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
        drift = causes[causes["cause"] == DRIFT]
        causes = causes[causes["cause"] != DRIFT]
        if len(causes):
            st.plotly_chart(charts.grouped_bars(causes, "cause", ["baseline", "current"],
                                                "Queries per failure cause"),
                            key="cause_changes")
            st.caption("Over the queries both runs answered.")
        if len(drift):
            st.caption(f"Drift (not a failure): production served different results than "
                       f"the index returns today for {int(drift['current'].iloc[0]):,} "
                       f"queries now, {int(drift['baseline'].iloc[0]):,} in the baseline.")


def to_look_at(src: Source, run: dict[str, Any], verdict: Verdict, limit: int = 6
               ) -> None:
    """For each gated metric (failed gates first): the queries that regressed most against
    the baseline, then the worst ones in the run."""
    st.subheader("Queries to look at")
    metrics = verdict_data.gated_metrics(src, run["run_id"], int(run["k"]))
    base = verdict.baseline_run_id
    listed: set[str] = set()
    for metric, status in metrics[:3]:
        listed |= _queries_for(src, run, base, metric, status, limit, listed)
    widgets.link("queries", "All queries in the explorer", run["run_id"],
                 icon=":material/search:")


def causes_text(causes: object) -> str:
    """A query's failure causes (escaped), or that it has none (NULL reads as NaN here)."""
    return widgets.escape_md(causes if isinstance(causes, str) and causes
                             else "no failure cause recorded")


def _queries_for(src: Source, run: dict[str, Any], base: str | None, metric: str,
                 status: str | None, limit: int, listed: set[str]) -> set[str]:
    """One gated metric's queries to look at, leaving out those listed for an earlier
    metric (fetched with room for them); returns the ids it lists."""
    gate = {"failed": " · :red[gate failed]", "not_evaluated": " · :orange[gate not "
            "evaluated]", "passed": " · :green[gate passed]"}.get(status or "", "")
    st.markdown(f"**{widgets.escape_md(metric)}**{gate}")
    room = limit + len(listed)
    regressed = (data.regressed(src, base, run["run_id"], metric, room) if base
                 else pd.DataFrame(columns=["query_id"]))
    failing = data.failing(src, run["run_id"], metric, room)
    if not len(regressed) and not len(failing):
        measured = data.metric_summary(src, run["run_id"], (metric,))
        if len(measured) and int(measured["n"].iloc[0]):
            st.caption(f"Every judged query has the best {metric}.")
        else:
            st.caption(f"No query of this run has a {metric} (no judgments?): nothing to "
                       "rank by.")
        return set()
    regressed = regressed[~regressed["query_id"].isin(listed)].head(limit)
    failing = failing[~failing["query_id"].isin(listed | set(regressed["query_id"]))]
    failing = failing.head(max(limit - len(regressed), 3 if len(failing) else 0))
    if len(regressed):
        st.caption(f"Largest change for the worse in {metric} since `{base}`:")
        widgets.query_links(regressed, run["run_id"], lambda r: (
            f"{widgets.escape_md(metric)} {r['baseline']:.2f} → {r['current']:.2f} · "
            + causes_text(r["causes"])))
    if len(failing):
        st.caption(f"Worst {metric} in this run:")
        widgets.query_links(failing, run["run_id"], lambda r: (
            f"{widgets.escape_md(metric)} {r['current']:.2f} · "
            + causes_text(r["causes"])))
    if not len(regressed) and not len(failing):
        st.caption(f"The queries with the worst {metric} are those listed above.")
    return set(regressed["query_id"]) | set(failing["query_id"])


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    st.title("Overview")
    st.caption(f"Run `{run['run_id']}` · {run['status']} · {run['backend']} {run['mode']} · "
               f"{run['level']} level · log {widgets.escape_md(run['log'] or '—')} · "
               f"{int(run['queries'] or 0):,} queries · metrics at k = {int(run['k'])}")
    if run["status"] != "complete" and run.get("status_reason"):
        st.info(f"This run is **{run['status']}**: {widgets.escape_md(run['status_reason'])}",
                icon=":material/pending:")
    verdict = gate_verdict(src, run)
    base = verdict.baseline_run_id
    if base:
        st.caption(f"Compared with the baseline `{base}`")
    elif verdict.gate_status != "not_evaluated":  # the banner said why already
        st.caption("No baseline: " + widgets.escape_md(verdict.baseline_reason or "none stored")
                   + ".")
    headline(src, run, base)
    to_look_at(src, run, verdict)
    trends(src, run)
    changes(src, run, verdict)


main()
