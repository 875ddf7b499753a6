"""Judge: the one page that writes. A queue of (query, document) pairs pooled from the top k
of the run and of the latest other-mode run of its log, plus its silver evidence, that the
chosen judgment list does not judge yet, highest expected impact on the gate metrics first
(``auditor.store.read.judging_queue``); grades 0-3 with the keyboard, `s`
to skip, `x` for "can't tell" (skipped, not stored; Streamlit reserves `c`), `f` to finish
the session. A rater's session opens one new version of the list (its labels copied inside
DuckDB) and appends each grade to it, every write one short transaction, so a running
audit waits milliseconds at most; "finish" (or another rater, another list, an import or a
rescoring of that version) makes the next grade open a new one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import streamlit as st

from auditor.agreement import agreement
from auditor.backends import BackendError
from auditor.backends.embedded import EmbeddedBackend
from auditor.errors import InputError
from auditor.judging import AUTOMATIC, Selection, kind, text_hash
from auditor.numerals import fixed
from auditor.sentences import content_words
from auditor.store import Store, StoreError
from auditor.store.judgment_lists import LABEL_SCHEMA
from auditor.store.read.judging_queue import judging_queue, pair_chunks
from auditor.weak_judges import weak_judges
from dashboards import data, widgets

GRADES = {0: "not relevant", 1: "relevant", 2: "highly relevant", 3: "perfect"}
LIMIT = 200  # pairs read per rerun


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    run_id, level = run["run_id"], run["level"]
    st.title("Judge")
    store = Store(Path(src.path))
    details = data.run_details(src, run_id)
    manifest = details.get("manifest") or {}
    default_list = ((manifest.get("judgments") or {}).get("list")) or "judged"
    left, middle, right = st.columns(3)
    rater = left.text_input("Rater", key="rater", help="labels are stored as human:<rater>")
    list_name = middle.text_input("Judgment list", value=default_list, key="judge_list")
    k = int(right.number_input("Pool the top k", min_value=1, max_value=100, value=10,
                               key="judge_k"))
    try:
        version = store.list_version(list_name).version
    except StoreError:
        version = None  # a new list: its first grade makes version 1
    queue = judging_queue(store, run_id, level, k, list_name, version, LIMIT).to_pylist()
    skipped = st.session_state.setdefault("judge_skipped", set())
    waiting = [pair for pair in queue if (pair["query_id"], pair["id"]) not in skipped]
    done = st.session_state.setdefault("judge_done", 0)
    opened = st.session_state.get("judge_open")
    into = (f" into {opened[0]}@{opened[2]}" if opened else "")
    more = "+" if len(queue) >= LIMIT else ""
    st.progress(done / max(1, done + len(waiting)),
                text=f"{done} judged this session{into} · {len(waiting)}{more} waiting in "
                     f"{list_name}@{version or 0} (top {k})")
    if version is not None:
        _agreement_panel(store, f"{list_name}@{version}")
    if opened:
        st.button("finish session", key="finish", shortcut="f", on_click=_finish,
                  help="the next grade opens a new version of the list")
    if not waiting:
        st.success("Nothing left to judge at this k.")
        return
    pair = waiting[0]
    st.subheader("Query")
    st.text(pair["query"])
    if pair.get("answer"):
        st.caption("Logged answer")
        st.text(pair["answer"])
    where = f"rank {pair['rank']}" if pair["rank"] is not None else "silver evidence, unranked"
    st.subheader(f"Document {pair['id']} ({where})")
    st.caption(_why(pair))
    title, text = _document(store, details, level, pair)
    if title:
        st.markdown(f"**{widgets.escape_md(title)}**")
    if text:
        st.markdown(widgets.highlight(text, set(content_words(pair["query"]))))
    else:
        st.caption("Neither the store nor the run's index holds this document's text (the "
                   "store keeps cited passages only; an Elasticsearch index is not read here).")
    ready = bool(rater.strip() and list_name.strip())
    if not ready:
        st.info("Type your name as rater (and a list name) to grade.")
    cols = st.columns(len(GRADES) + 2)
    for col, (grade, meaning) in zip(cols, GRADES.items(), strict=False):
        col.button(f"{grade} {meaning}", key=f"grade_{grade}", shortcut=str(grade),
                   disabled=not ready, on_click=_grade,
                   args=(store, list_name, pair, grade, rater.strip(), level, text))
    cols[-2].button("skip", key="skip", shortcut="s", on_click=_skip, args=(pair,))
    cols[-1].button("can't tell", key="cant_tell", shortcut="x", on_click=_skip, args=(pair,))


def _grade(store: Store, list_name: str, pair: dict, grade: int, rater: str,
           level: str, text: str | None) -> None:
    """Store one grade; the label keeps a hash of the text the rater saw."""
    labels = pa.Table.from_pylist([{
        "position": 0, "query_id": pair["query_id"], "query_hash": text_hash(pair["query"]),
        "doc_id": pair["id"], "chunk_id": pair["id"] if level == "chunk" else None,
        "text_hash": text_hash(text) if text else None, "grade": grade,
        "source": f"human:{rater}", "labeled_at": datetime.now(UTC), "note": None,
        "iteration": None}], schema=LABEL_SCHEMA)
    token = st.session_state.setdefault("judge_token", uuid.uuid4().hex[:8])
    origin = f"judging session {token} by {rater}"
    opened = st.session_state.get("judge_open")
    session = opened[2] if opened and opened[:2] == (list_name, origin) else None
    version = store.add_labels(list_name, labels, origin=origin, session=session)
    st.session_state["judge_open"] = (list_name, origin, version)
    st.session_state["judge_done"] = st.session_state.get("judge_done", 0) + 1


def _finish() -> None:
    """Close the session's version: the next grade opens a new one."""
    st.session_state.pop("judge_open", None)
    st.session_state["judge_token"] = uuid.uuid4().hex[:8]
    st.session_state["judge_done"] = 0


@st.cache_resource(max_entries=2, show_spinner="Opening the run's index…")
def _index(path: str) -> EmbeddedBackend | None:
    """The run's embedded index, for the text of documents the store has none of."""
    try:
        return EmbeddedBackend.open(Path(path), None)
    except BackendError:
        return None


def _document(store: Store, details: dict, level: str, pair: dict
              ) -> tuple[str | None, str | None]:
    """Title and text of the pair's document: stored with the run (cited passages), else
    its best-ranked chunks read from the run's embedded index when it is still there."""
    if pair.get("text"):
        return pair.get("title"), pair["text"]
    config = details.get("config") or {}
    if config.get("backend", "embedded") != "embedded" or not config.get("index"):
        return None, None
    index = _index(str(config["index"]))
    if index is None:
        return None, None
    found = index.fetch(pair_chunks(store, details["run_id"], level, pair["query_id"],
                                    pair["id"]))
    if not found:
        return None, None
    chunks = list(found.values())
    return chunks[0].get("title"), " … ".join(chunk["text"] for chunk in chunks)


def _agreement_panel(store: Store, spec: str) -> None:
    """How far the list's raters agree, and its automatic sources against its people
    (computed when asked: τ measures every stored run)."""
    with st.expander(f"Agreement on {spec}"):
        if not st.toggle("Measure", key="judge_agreement"):
            st.caption("Cohen's κ and Krippendorff's α between the list's raters; automatic "
                       "sources against people by κ and Kendall's τ over the stored runs.")
            return
        found = agreement(store, spec, Selection("all"))
        st.markdown(f"{len(found.raters)} raters, {found.items} pairs judged by two or more. "
                    "Krippendorff's α: " + ", ".join(
                        f"{level} {fixed(value)}" for level, value in found.alpha.items()))
        if found.kappas:
            st.dataframe(pd.DataFrame([{
                "rater A": k.a, "rater B": k.b, "pairs": k.n, "κ": k.kappa,
                "κ linear": k.linear, "κ quadratic": k.quadratic} for k in found.kappas]),
                hide_index=True)
        if not any(kind(r) in AUTOMATIC for r in found.raters):
            return
        try:
            weak = weak_judges(store, spec)
        except InputError as exc:
            st.caption(str(exc))
            return
        st.dataframe(pd.DataFrame([{
            "source": j.source, "shared pairs": j.overlap, "κ relevant": j.kappa,
            "κ linear": j.kappa_linear, f"τ of runs ({weak.metric})": j.tau,
            "runs": j.ranked_runs, "τ not evaluated": j.reason} for j in weak.judges]),
            hide_index=True)


def _why(pair: dict) -> str:
    """The pair's place in the queue, in words."""
    reasons = [f"in the top k of {', '.join(pair['modes'])}"] if pair["modes"] else []
    if pair["gates"]:
        reasons.append(f"its query is under pressure on {pair['gates']} gate metric(s)")
    if pair["silver"]:
        reasons.append("the answer's evidence (silver)")
    if pair["disagree"]:
        reasons.append("the pooled rankings disagree on it")
    return f"expected impact {pair['impact']:.2f}: " + "; ".join(reasons)


def _skip(pair: dict) -> None:
    st.session_state.setdefault("judge_skipped", set()).add((pair["query_id"], pair["id"]))
main()
