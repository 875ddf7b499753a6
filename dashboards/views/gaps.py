"""Knowledge gaps: the run's queries grouped by topic, each topic's failure share next to how
much of the corpus is about it; a topic users ask about often that few chunks cover is a gap
(see ``auditor.gaps``). Select a row to see its queries, each linked to its answer trace."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, gaps_data, widgets


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    run_id = run["run_id"]
    st.title("Knowledge gaps")
    found = gaps_data.gap_run(src, run_id)
    if found is None:
        st.info(f"This run was audited before knowledge gaps existed: run `auditor gaps "
                f"{run_id} --recompute` to find them.")
        return
    df = gaps_data.gaps(src, run_id)
    if df.empty:
        st.info(f"Knowledge gaps were not evaluated: {widgets.escape_md(found['not_evaluated'])}.")
        return
    thin = df[df["corpus_density"].notna() & (df["corpus_density"] < df["query_share"])]
    cols = st.columns(4)
    cols[0].metric("topics", f"{len(df):,}", border=True)
    cols[1].metric("queries", f"{int(df['queries'].sum()):,}", border=True)
    cols[2].metric("thin topics", f"{len(thin):,}", border=True,
                   help="corpus density below the topic's share of the queries: users ask "
                        "about it more than the corpus covers it")
    cols[3].metric("chunks compared", f"{found['chunks']:,}", border=True,
                   help="corpus density is the share of these chunks (all, or a seeded "
                        "sample of a large index) nearest the topic")
    if found["not_evaluated"]:
        st.warning(widgets.escape_md(found["not_evaluated"]))
    st.plotly_chart(charts.gap_map(df), key="gap_map")
    st.caption("Each bubble is a topic: size = queries, colour = share failing at k; "
               "position = the topics' centroids projected to 2-D (near = similar).")
    shown = df[["cluster", "terms", "queries", "query_share", "failing", "failure_share",
                "corpus_density", "top_causes", "unsupported"]]
    picked = widgets.table(
        shown, key="gaps", file_name=f"gaps-{run_id}.csv", on_select="rerun",
        selection_mode="single-row", column_config={
            "cluster": st.column_config.NumberColumn("#", width="small"),
            "terms": st.column_config.TextColumn("topic", width="medium"),
            "query_share": st.column_config.ProgressColumn(
                "share of queries", format="percent", min_value=0.0, max_value=1.0),
            "failing": st.column_config.NumberColumn("failing queries"),
            "failure_share": st.column_config.ProgressColumn(
                "failure share", format="percent", min_value=0.0, max_value=1.0),
            "corpus_density": st.column_config.NumberColumn("corpus density", format="percent"),
            "top_causes": st.column_config.TextColumn("top causes", width="medium"),
            "unsupported": st.column_config.NumberColumn("unsupported sentences")})
    rows = picked.selection.rows if picked is not None else []
    cluster = int(shown.iloc[rows[0]]["cluster"]) if rows else int(shown.iloc[0]["cluster"])
    label = df.loc[df["cluster"] == cluster, "terms"].iloc[0]
    st.subheader(f"Topic {cluster}: {widgets.escape_md(label)}")
    if not rows:
        st.caption("The worst topic; select a row above to see another.")
    queries = gaps_data.gap_queries(src, run_id, cluster)
    widgets.query_links(queries, run_id,
                        lambda row: widgets.escape_md(row["causes"] or "no failure"))


main()
