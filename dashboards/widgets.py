"""Pieces every page shares: the current store and run, the segment filter, paging, CSV
downloads, links between pages and escaping of logged text.

Logged text (queries, answers, document titles and chunks) is untrusted. It reaches the page
only through widgets that render plain text (``st.text``, ``st.code``, dataframes) or through
``st.markdown`` after :func:`escape_md`, which backslash-escapes every ASCII punctuation
character so no markdown construct (link, image, directive, LaTeX) can be formed from it.
``unsafe_allow_html`` is never used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from auditor.numerals import MISSING, estimate
from dashboards import data
from dashboards.data import Segment, Source

PAGES = {
    "overview": "views/overview.py",
    "why": "views/why.py",
    "queries": "views/queries.py",
    "trace": "views/trace.py",
    "corpus": "views/corpus.py",
    "scatter": "views/scatter.py",
    "gaps": "views/gaps.py",
    "compare": "views/compare.py",
    "judge": "views/judge.py",
}
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_SPACE = re.compile(r"\s+")
_AUTOLINK = re.compile(r"://|(?i:www)\.|@(?=[\w-]+\.\w)")  # GFM autolink starts
_JOINER = re.compile(r"[ \t]+|-|/")
SUPPORT_COLOUR = {"supported": "green", "retrievable_not_retrieved": "orange",
                  "contradicted": "violet", "ungrounded": "red"}


# escaping --------------------------------------------------------------------------------
def escape_md(text: str) -> str:
    """Logged text made inert for ``st.markdown``: punctuation escaped, line breaks flattened,
    and a zero-width space after ``://``, ``www.`` and an e-mail's ``@`` so GFM makes no
    bare link."""
    text = _AUTOLINK.sub("\\g<0>\u200b", _SPACE.sub(" ", str(text)))
    return _PUNCTUATION.sub(r"\\\1", text)


def conflict_md(row: dict[str, Any]) -> str:
    """A stored conflict as markdown: where the passage is, then both values side by side,
    every logged value escaped (a value such as "<b>" or "[bold]" shows as written)."""
    rank = f"rank {int(row['rank'])}" if row.get("rank") is not None else "not ranked"
    return (f":violet-badge[conflict] {escape_md(row['origin'])} {rank} · chunk "
            f"{escape_md(row['chunk_id'])} · document {escape_md(row['doc_id'])}: the passage "
            f"says **{escape_md(row['passage_value'])}**, the answer says "
            f"**{escape_md(row['answer_value'])}**")


def highlight(text: str, words: set[str], colour: str = "green") -> str:
    """Markdown of ``text`` (escaped) with the tokens whose stem is in ``words`` marked;
    neighbouring marked tokens (only spaces or a hyphen between) share one mark."""
    from auditor.sentences import TOKEN, content_words  # the evidence step's words

    spans: list[list[int]] = []
    for match in TOKEN.finditer(text):
        stems = content_words(match.group())
        if not stems or stems[0] not in words:
            continue
        if spans and _JOINER.fullmatch(text[spans[-1][1]:match.start()]):
            spans[-1][1] = match.end()
        else:
            spans.append([match.start(), match.end()])
    out, last = [], 0
    for start, end in spans:
        out.append(escape_md(text[last:start]))
        out.append(f":{colour}-background[**{escape_md(text[start:end])}**]")
        last = end
    out.append(escape_md(text[last:]))
    return "".join(out)


# the current store and run -----------------------------------------------------------------
def current_source() -> Source:
    """The store this session reads (set by the app entry point), at its current version."""
    return data.source(Path(st.session_state["store_path"]))


def current_run(src: Source) -> dict[str, Any]:
    return data.run_row(src, st.session_state["run"])


def sample_banner(src: Source, run_id: str) -> None:
    """On every page of a sampled run: ``sampled: n of N`` and the headline estimates with
    their 95% CIs, since the pages' per-query numbers cover the sample only."""
    k = (data.run_details(src, run_id).get("config") or {}).get("diagnose_k", 10)
    found = data.sample(src, run_id, (f"recall@{k}", f"ndcg@{k}"))
    if found is None:
        return
    estimates = " · ".join(
        f"{metric} {estimate(e['mean'], e['ci_low'], e['ci_high'])}"
        for metric, e in found["estimates"].items())
    strata = f", stratified by {found['stratify_by']}" if found["stratify_by"] else ""
    st.warning(f"Sampled run — {escape_md(found['sampled'])} queries of the log (seed "
               f"{found['seed']}{escape_md(strata)}). Numbers on this page are over the "
               f"sampled queries; the whole log's estimates: {escape_md(estimates)}.",
               icon=":material/percent:")


GATE_LABEL = {"passed": "✓ passed", "failed": "✗ failed", "not_evaluated": "– not evaluated"}


def run_label(row: dict[str, Any], group: bool = False) -> str:
    """Unique per run (the id), so two runs started in the same minute stay apart; with
    ``group``, the backend, mode, level and log that make runs comparable."""
    started = pd.Timestamp(row["started_at"]).strftime("%b %d %H:%M")
    gate = GATE_LABEL.get(row.get("gate_status") or "", "not gated")
    status = "" if row["status"] == "complete" else f" · {row['status']}"
    where = f" · {row['group']}" if group else ""
    return f"{started} · {row['run_id'][-6:]}{where} · {gate}{status}"  # id before a cut


def param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value or None


# segment filter ----------------------------------------------------------------------------
def segment_filter(src: Source, run_id: str, key: str = "seg") -> Segment:
    """Sidebar filters on the metadata keys the run's queries carry, and on logged time."""
    sidebar = st.sidebar
    sidebar.subheader("Segment")
    values = data.segment_values(src, run_id)
    chosen = []
    for name, options in values.items():
        picked = sidebar.multiselect(escape_md(name), options, key=f"{key}_{name}",
                                     placeholder="all")  # labels render markdown: escaped
        chosen.append((name, tuple(picked)))
    if not values:
        sidebar.caption("The log carries no metadata keys to filter on.")
    lo, hi = data.logged_range(src, run_id)
    start = end = None
    if lo is not None and hi is not None and hi > lo:
        step = max((hi - lo) / 200, timedelta(minutes=1))
        step = timedelta(minutes=round(step.total_seconds() / 60))
        picked = sidebar.slider("Logged between (UTC)", min_value=lo, max_value=hi,
                                value=(lo, hi), step=step, format="MMM D HH:mm",
                                key=f"{key}_time")
        start = picked[0] if picked[0] > lo else None
        end = picked[1] if picked[1] < hi else None
    return Segment(tuple(chosen), start, end)


# tables ----------------------------------------------------------------------------------
def pager(total: int, key: str, size: int = 50) -> tuple[int, int]:
    """A page number input under a table; returns (page, page size)."""
    pages = max((total + size - 1) // size, 1)
    if pages == 1:
        return 1, size
    left, right = st.columns([1, 4])
    page = left.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key=key)
    right.caption(f"{total:,} rows · {pages:,} pages of {size}")
    return int(page), size


def csv_download(label: str, make: Callable[[], bytes], file_name: str, key: str) -> None:
    """A download button whose CSV is built only when it is clicked."""
    st.download_button(label, data=make, file_name=file_name, mime="text/csv", key=key,
                       icon=":material/download:", on_click="ignore")


def table(df: pd.DataFrame, *, key: str, file_name: str | None = None,
          column_config: dict[str, Any] | None = None, height: int | str = "auto",
          **kwargs: Any) -> Any:
    """A sortable dataframe, with a CSV download of exactly what it shows."""
    shown = st.dataframe(df, hide_index=True, column_config=column_config, key=key,
                         height=height, **kwargs)
    if file_name:
        csv_download("CSV", lambda: df.to_csv(index=False).encode(), file_name,
                     key=f"{key}_csv")
    return shown


def blank_numbers(values: pd.Series, digits: int = 1) -> pd.Series:
    """Numbers as text with NULL as an empty cell: the grid prints "None" for a NULL number,
    which reads like a value (use where "not measured" must look like nothing)."""
    return values.map(lambda v: "" if pd.isna(v) else f"{v:,.{digits}f}")


def number(value: float | None, digits: int = 3) -> str:
    """A metric tile's number, missing spelt as everywhere else (``auditor.numerals``);
    NaN is not measured either."""
    return MISSING if value is None or pd.isna(value) else f"{value:.{digits}f}"


# links -----------------------------------------------------------------------------------
def link(page: str, label: str, run_id: str, query_id: str | None = None,
         icon: str | None = None) -> None:
    """A link to another page for this run (and query); the label must be escaped already."""
    params = {"run": run_id} | ({"query": query_id} if query_id else {})
    st.page_link(PAGES[page], label=label, query_params=params, icon=icon)


def query_links(df: pd.DataFrame, run_id: str, detail: Callable[[pd.Series], str],
                width: int = 160) -> None:
    """One compact row per query: id and text (escaped, shortened), a detail line (escaped by
    the caller), and links to its answer trace and to its details in the explorer."""
    for row in df.to_dict("records"):
        series = pd.Series(row)
        text = str(series["query"])
        text = text if len(text) <= width else text[:width - 1] + "…"
        with st.container(border=True):
            left, trace, explore = st.columns([8, 1.3, 1.3], vertical_alignment="center")
            left.markdown(f"**{escape_md(series['query_id'])}** · {escape_md(text)}  \n"
                          f":gray[{detail(series)}]")
            with trace:
                link("trace", "Trace", run_id, str(series["query_id"]),
                     icon=":material/format_list_bulleted:")
            with explore:
                link("queries", "Details", run_id, str(series["query_id"]),
                     icon=":material/search:")


def query_trace(src: Source, run_id: str, query_id: str) -> dict[str, Any] | None:
    """Everything stored about one query, or a warning (and None) when the run lacks it."""
    from auditor.store import StoreError
    from dashboards import query_data

    try:
        return query_data.query_trace(src, run_id, query_id)
    except StoreError:
        st.warning(f"Query {escape_md(query_id)} is not in this run.")
        return None

