"""Query explorer: a searchable, filterable, sortable table of the run's queries (paged in
SQL) whose selected row (or ``?query=`` link) opens the query's detail below."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from auditor.cases import DRIFT
from auditor.diagnose import RULES
from dashboards import detail, query_data, widgets
from dashboards.data import Segment, Source
from dashboards.query_data import QueryFilter

PAGE_SIZE = 50
_BLANK = "blank: not measured for this query (sort with Sort by)"
LATENCY_COLUMNS = {  # what each latency measures; text, so that NULL shows blank
    "replay_latency_ms": st.column_config.TextColumn(
        "replay ms", alignment="right", help=f"time the auditor's replay of the query took; "
                                             f"{_BLANK}"),
    "served_latency_ms": st.column_config.TextColumn(
        "production ms", alignment="right", help=f"latency production logged when it served "
                                                 f"the query; {_BLANK}"),
}


def filters(src: Source, run: dict[str, Any], segment: Segment) -> QueryFilter:
    k = int(run["k"])
    causes = [c for c in RULES if c != DRIFT]  # drift is no failure: its own filter
    search, cause, drift, status = st.columns([3, 3, 2, 2])
    text = search.text_input("Search", key="q_search", placeholder="query text or id")
    chosen = cause.multiselect("Cause of failure", causes, key="q_causes",
                               placeholder="any cause")
    drifted = drift.selectbox("Drift", ["any", "drifted", "not drifted"], key="q_drift",
                              help="drifted: production served different results than the "
                                   "index returns today (not a retrieval failure)")
    statuses = status.multiselect("Replay status", ["ok", "empty", "error"], key="q_status",
                                  placeholder="any")
    recall, sort, order = st.columns([3, 3, 2])
    limit = recall.slider(f"recall@{k} at most", 0.0, 1.0, 1.0, 0.05, key="q_recall",
                          help="below 1 keeps only judged queries at or under the value")
    column = sort.selectbox("Sort by", query_data.sortable_columns(k), key="q_sort",
                            format_func=lambda c: query_data.LATENCY_LABELS.get(c, c))
    direction = order.radio("Order", ["ASC", "DESC"], key="q_order", horizontal=True)
    return QueryFilter(search=text.strip(), causes=tuple(chosen), drift=drifted,
                       statuses=tuple(statuses),
                       max_recall=None if limit >= 1.0 else limit, sort=column,
                       order="DESC" if direction == "DESC" else "ASC")


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """The page as the table shows it: latencies blank where not measured, not "None"."""
    return df.assign(**{column: widgets.blank_numbers(df[column])
                        for column in query_data.LATENCY_LABELS})


def selected(event: Any, df: Any) -> str | None:
    rows = getattr(getattr(event, "selection", None), "rows", None) or []
    return str(df.iloc[rows[0]]["query_id"]) if rows and rows[0] < len(df) else None


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    k = int(run["k"])
    segment = widgets.segment_filter(src, run["run_id"])
    st.title("Query explorer")
    flt = filters(src, run, segment)
    view = f"{run['run_id']}_{hash((segment, flt))}"  # a new filter starts again at page 1
    total = query_data.query_page(src, run["run_id"], k, segment, flt, 1, PAGE_SIZE)[1]
    table_slot = st.container()  # the pager sits under the table
    page, size = widgets.pager(total, f"q_page_{view}", PAGE_SIZE)
    df, total = query_data.query_page(src, run["run_id"], k, segment, flt, page, size)
    with table_slot:
        st.caption(f"{total:,} queries match · select a row to open it")
        # A selection is a row position: keyed by what the table shows, so a new search,
        # sort or page starts unselected instead of selecting whatever row moved there.
        event = st.dataframe(
            shown(df), hide_index=True, key=f"q_table_{view}_{page}", on_select="rerun",
            selection_mode="single-row", height=min(38 + 35 * len(df), 420),
            column_config={"query": st.column_config.TextColumn("query", width="medium"),
                           "causes": st.column_config.TextColumn("causes", width="medium"),
                           "drifted": st.column_config.CheckboxColumn(
                               "drifted", help="production served different results than "
                                               "the index returns today"),
                           **LATENCY_COLUMNS,
                           "logged_at": st.column_config.DatetimeColumn("logged_at")})
        widgets.csv_download(
            f"CSV of all {total:,} matching queries",
            lambda: query_data.query_csv(src, run["run_id"], k, segment, flt),
            f"queries-{run['run_id']}.csv", key="q_csv")
    chosen = selected(event, df)
    if chosen:
        st.query_params["query"] = chosen
    query_id = chosen or widgets.param("query")
    st.divider()
    if not query_id:
        st.caption("Select a query above (or open one from another page) to see its detail.")
        return
    trace = widgets.query_trace(src, run["run_id"], query_id)
    if trace is None:
        return
    detail.show(src, run, trace)


main()
