"""Scatter: how many documents (and chunks) an answer's support needs, how often the whole
answer fits in the top k (gatherable@k), and the most scattered answers with their sources."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, corpus_data, data, query_data, widgets


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    run_id, k = run["run_id"], int(run["k"])
    st.title("Scatter")
    metrics = ("scatter_docs", "scatter_chunks", f"gatherable@{k}", "effective_sources",
               "scatter_judged")
    summary = data.metric_summary(src, run_id, metrics)
    summary = summary[summary["n"] > 0]
    if summary.empty:
        st.info("No scatter was measured in this run (no traced answers and no judgments).")
        return
    cols = st.columns(len(summary))
    for col, row in zip(cols, summary.itertuples(), strict=True):
        col.metric(row.metric, widgets.number(row.mean), border=True,
                   help=f"mean over n = {row.n:,}; 95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}]")
        col.caption(f"n {row.n:,} · 95% CI {row.ci_low:.2f}–{row.ci_high:.2f}")
    dist = corpus_data.scatter_distribution(src, run_id)
    left, right = st.columns(2)
    for column, level in ((left, "doc"), (right, "chunk")):
        part = dist[dist["level"] == level]
        with column:
            st.plotly_chart(charts.bars(part, "size", "queries",
                                        f"Answers by the {level}s their support needs",
                                        f"{level}s needed", "queries",
                                        colour="#6a1b9a" if level == "doc" else "#00838f"),
                            key=f"dist_{level}")
    st.caption(f"Limits: scattered above {run_details_limit(src, run_id)} documents or "
               f"{k} chunks (not gatherable at k); 'no support' = no sentence supportable.")
    st.subheader("Most scattered answers")
    worst = corpus_data.worst_scatter(src, run_id, k)
    if worst.empty:
        st.caption("No answer needed any document.")
        return
    shown = worst.assign(doc_sources=worst["doc_sources"].map(", ".join))
    widgets.table(shown, key="worst", file_name=f"scatter-{run_id}.csv", column_config={
        "query": st.column_config.TextColumn("query", width="large"),
        "doc_sources": st.column_config.TextColumn("documents", width="medium")})
    top = worst.head(5)
    titles = query_data.titles(src, run_id, tuple({d for ds in top["doc_sources"] for d in ds}))
    widgets.query_links(top, run_id, lambda r: (
        f"{plural(int(r['docs']), 'document')}, {plural(r['chunks'], 'chunk')} · "
        + sources_line(r["doc_sources"], titles)))


def plural(count: float | None, noun: str) -> str:
    if count is None or count != count:
        return f"— {noun}s"
    return f"{int(count)} {noun}{'' if int(count) == 1 else 's'}"


def sources_line(sources: list[str], titles: dict[str, str], limit: int = 4) -> str:
    """The answer's documents with their titles (escaped), the first few."""
    named = [f"{doc} ({_short(titles[doc])})" if titles.get(doc) else doc
             for doc in sources[:limit]]
    more = f" and {len(sources) - limit} more" if len(sources) > limit else ""
    return widgets.escape_md("; ".join(named)) + more


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def run_details_limit(src: data.Source, run_id: str) -> int:
    """The run's scatter limit: its manifest's thresholds, else its config, else the
    default of the diagnosis."""
    from auditor.cases import Thresholds

    run = data.run_details(src, run_id)
    for settings in ((run.get("manifest") or {}).get("thresholds"), run.get("config")):
        if (settings or {}).get("scatter_limit") is not None:
            return int(settings["scatter_limit"])
    return Thresholds().scatter_limit


main()
