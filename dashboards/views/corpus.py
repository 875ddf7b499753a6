"""Corpus coverage: how much of the index ever reaches the top k, how unequally retrievals
are spread (Gini, Lorenz curve), coverage per collection, and the never-retrieved and
unreachable documents."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, corpus_data, widgets

PAGE_SIZE = 100


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    run_id, k = run["run_id"], int(run["k"])
    st.title("Corpus coverage")
    summary = corpus_data.corpus_summary(src, run_id)
    if not summary.documents:
        st.info("This run has no corpus pass (no document was counted).")
        return
    st.caption(f"Retrieval counted at k = {k} over the run's {int(run['queries'] or 0):,} "
               "replayed queries; reachability: each document probed with its own title.")
    cols = st.columns(5)
    cols[0].metric("documents", f"{summary.documents:,}", border=True)
    cols[1].metric(f"coverage@{k}", widgets.number(summary.coverage), border=True,
                   help="share of documents in the top k of at least one query")
    cols[2].metric(f"never retrieved at {k}", f"{summary.never_at_k:,}", border=True)
    cols[3].metric("unreachable", f"{summary.unreachable:,}", border=True,
                   help=f"of {summary.probed:,} probed: the title does not retrieve "
                        f"the document in the top {k}")
    cols[4].metric("Gini", widgets.number(summary.gini), border=True,
                   help="0: every document retrieved equally often; near 1: a few documents "
                        "take every slot")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.lorenz(corpus_data.lorenz(src, run_id), summary.gini),
                        key="lorenz")
    with right:
        hist = corpus_data.retrieval_histogram(src, run_id)
        st.plotly_chart(charts.bars(hist, "bin", "documents", "Documents by retrievals at k",
                                    "queries that retrieved the document", "documents"),
                        key="retrieval_hist")
    st.subheader("By collection")
    widgets.table(corpus_data.by_collection(src, run_id), key="collections",
                  file_name=f"collections-{run_id}.csv", column_config={
                      "coverage": st.column_config.ProgressColumn(
                          "coverage", format="percent", min_value=0.0, max_value=1.0)})
    st.subheader("Documents")
    which = st.segmented_control("Show", list(corpus_data.DOC_FILTERS),
                                 default="never retrieved at k", key="doc_filter")
    which = which or "never retrieved at k"
    total = corpus_data.documents(src, run_id, which, 1, PAGE_SIZE)[1]
    page, size = widgets.pager(total, f"doc_page_{which}", PAGE_SIZE)
    df, total = corpus_data.documents(src, run_id, which, page, size)
    st.caption(f"{total:,} documents · least retrieved first")
    st.dataframe(df, hide_index=True, key="documents",
                 column_config={"title": st.column_config.TextColumn("title", width="large")})
    widgets.csv_download(f"CSV of all {total:,}",
                         lambda: corpus_data.documents_csv(src, run_id, which),
                         f"documents-{which.replace(' ', '-')}-{run_id}.csv", key="doc_csv")


main()
