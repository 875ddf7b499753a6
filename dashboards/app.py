"""The dashboard's entry point: which store to read, which run to show, and the nine pages.

    streamlit run dashboards/app.py -- --store PATH      (or AUDITOR_STORE=PATH)

The store path comes from ``--store`` after ``--``, else ``AUDITOR_STORE``, else the
``store`` setting of ``audit.toml``. The dashboard only reads, except the Judge page (one
short write per grade): a missing, busy or unreadable store gives a message saying what to
do, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from auditor.store import StoreError
from dashboards import data, widgets

DEFAULT_STORE = Path(".auditor/audit.duckdb")
TITLES = {
    "overview": ("Overview", ":material/dashboard:"),
    "why": ("Why retrieval fails", ":material/troubleshoot:"),
    "queries": ("Query explorer", ":material/search:"),
    "trace": ("Answer trace", ":material/format_list_bulleted:"),
    "corpus": ("Corpus coverage", ":material/library_books:"),
    "scatter": ("Scatter", ":material/scatter_plot:"),
    "gaps": ("Knowledge gaps", ":material/travel_explore:"),
    "compare": ("Compare runs", ":material/compare_arrows:"),
    "judge": ("Judge", ":material/rate_review:"),
}


def store_path(argv: list[str]) -> Path:
    """--store, else AUDITOR_STORE, else the store setting of audit.toml, else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store", type=Path)
    known, _ = parser.parse_known_args(argv)
    if known.store is not None:
        return known.store
    if os.environ.get("AUDITOR_STORE"):
        return Path(os.environ["AUDITOR_STORE"])
    try:
        from auditor.config import load_settings

        return Path(load_settings().store)
    except Exception:  # an unreadable audit.toml must not stop the dashboard
        return DEFAULT_STORE


def pages() -> list[st.Page]:
    return [st.Page(widgets.PAGES[key], title=title, icon=icon, url_path=key,
                    default=key == "overview")
            for key, (title, icon) in TITLES.items()]


def pick_run(src: data.Source) -> bool:
    """The sidebar's run picker: comparable runs (same backend, mode, level and log) first,
    then a run among them; a ``run`` query parameter (a link) selects the run."""
    df = data.runs(src)
    if df.empty:
        st.info(f"The store {src.path} holds no run yet: run `auditor run` first.")
        return False
    ids = list(df["run_id"])
    wanted = widgets.param("run")
    if wanted in ids and st.session_state.get("_linked_run") != wanted:
        st.session_state["run"] = st.session_state["_linked_run"] = wanted
    if st.session_state.get("run") not in ids:
        st.session_state["run"] = data.default_run(src)
    groups = list(dict.fromkeys(df["group"]))  # the group of the newest run first
    group_of = dict(zip(df["run_id"], df["group"], strict=True))
    st.session_state["run_group"] = group_of[st.session_state["run"]]
    if len(groups) > 1:
        counts = df["group"].value_counts()
        st.sidebar.selectbox("Comparable runs", groups, key="run_group",
                             format_func=lambda g: f"{g} ({counts[g]} runs)",
                             on_change=_group_changed, args=(df,),
                             help="runs of the same backend, mode, level and log")
    members = df[df["group"] == st.session_state["run_group"]]
    labels = {row["run_id"]: widgets.run_label(row) for row in members.to_dict("records")}
    st.sidebar.selectbox("Run", list(members["run_id"]), key="run",
                         format_func=labels.__getitem__, on_change=_run_changed)
    run = data.run_row(src, st.session_state["run"])
    st.sidebar.caption(f"run `{run['run_id']}` · {widgets.escape_md(run['group'])} · log "
                       f"{widgets.escape_md(run['log'] or '—')} · newest first · "
                       f"{len(members)} of {len(ids)} runs")
    return True


def _group_changed(df: pd.DataFrame) -> None:
    """Another group picked: its newest complete run (else its newest)."""
    members = df[df["group"] == st.session_state["run_group"]]
    complete = members[members["status"] == "complete"]
    st.session_state["run"] = (complete if len(complete) else members)["run_id"].iloc[0]
    _run_changed()


def _run_changed() -> None:
    st.query_params["run"] = st.session_state["run"]
    st.query_params.pop("query", None)


def main() -> None:
    st.set_page_config(page_title="Retrieval audit", page_icon=":material/fact_check:",
                       layout="wide")
    navigation = st.navigation(pages())
    st.session_state["store_path"] = str(store_path(sys.argv[1:]))
    try:
        src = widgets.current_source()
        if not pick_run(src):
            return
        widgets.sample_banner(src, st.session_state["run"])
        navigation.run()
    except StoreError as exc:
        st.error(str(exc), icon=":material/database:")
        st.button("Try again", icon=":material/refresh:")
    except duckdb.Error as exc:
        st.error(f"The results store could not be read ({type(exc).__name__}: {exc}). If an "
                 "older auditor wrote it, upgrade it with `auditor migrate --store "
                 f"{st.session_state['store_path']}`.", icon=":material/database:")


main()
