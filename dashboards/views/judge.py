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

import pyarrow as pa
import streamlit as st

from auditor.judging import text_hash
from auditor.sentences import content_words
from auditor.store import Store, StoreError
from auditor.store.judgment_lists import LABEL_SCHEMA
from auditor.store.read.judging_queue import judging_queue
from dashboards import data, widgets

GRADES = {0: "not relevant", 1: "relevant", 2: "highly relevant", 3: "perfect"}
LIMIT = 200  # pairs read per rerun


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    run_id, level = run["run_id"], run["level"]
    st.title("Judge")
    store = Store(Path(src.path))
    manifest = (data.run_details(src, run_id).get("manifest") or {})
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
    if pair.get("title"):
        st.markdown(f"**{widgets.escape_md(pair['title'])}**")
    if pair.get("text"):
        st.markdown(widgets.highlight(pair["text"], set(content_words(pair["query"]))))
    else:
        st.caption("The store holds no text for this document (only for cited passages).")
    ready = bool(rater.strip() and list_name.strip())
    if not ready:
        st.info("Type your name as rater (and a list name) to grade.")
    cols = st.columns(len(GRADES) + 2)
    for col, (grade, meaning) in zip(cols, GRADES.items(), strict=False):
        col.button(f"{grade} {meaning}", key=f"grade_{grade}", shortcut=str(grade),
                   disabled=not ready, on_click=_grade,
                   args=(store, list_name, pair, grade, rater.strip(), level))
    cols[-2].button("skip", key="skip", shortcut="s", on_click=_skip, args=(pair,))
    cols[-1].button("can't tell", key="cant_tell", shortcut="x", on_click=_skip, args=(pair,))


def _grade(store: Store, list_name: str, pair: dict, grade: int, rater: str,
           level: str) -> None:
    text = pair.get("text")
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
