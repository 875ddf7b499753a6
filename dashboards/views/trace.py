"""Answer trace: the logged answer with each sentence coloured by support; a selected
sentence shows its supporting chunks (served and replayed) with the matching words
highlighted, rank, score, document title and source link, or why it has no support."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

from auditor.cases import DRIFT
from dashboards import query_data, widgets
from dashboards.data import Source, run_details
from dashboards.widgets import SUPPORT_COLOUR, escape_md

STATUS_TEXT = {
    "supported": "supported by what was served (or replayed, when nothing was logged)",
    "retrievable_not_retrieved": "support exists in the index, but retrieval did not bring it",
    "contradicted": "supported nowhere, and a retrieved chunk states another value",
    "ungrounded": "supported by no chunk anywhere in the index",
}
CHUNKS_PER_ORIGIN = 3


def pick_query(src: Source, run_id: str) -> str | None:
    """The query from the link (``?query=``), else one typed or chosen from the worst."""
    linked = widgets.param("query")
    if linked:
        return linked
    st.caption("Open a query from the Overview or the Query explorer, or pick one here.")
    typed = st.text_input("Query id", key="trace_query").strip()
    if typed:
        return typed
    df = query_data.traced_queries(src, run_id)
    if df.empty:
        st.info("This run traced no answers (the log carries no `answer`, or `trace` is off).")
        return None
    st.markdown("**Answers with the most unsupported sentences**")
    widgets.query_links(df, run_id, lambda r: (
        f"{r['sentences']} sentences · {r['supported']} supported · "
        f"{r['retrievable_not_retrieved']} retrievable, not retrieved · "
        f"{r['contradicted']} contradicted · {r['ungrounded']} ungrounded"))
    return None


def coloured_answer(answer: str, sentences: list[dict[str, Any]]) -> str:
    """The answer as markdown: each traced sentence on its support colour, the rest plain."""
    parts, last = [], 0
    for s in sorted(sentences, key=lambda s: s["start_char"]):
        parts.append(escape_md(answer[last:s["start_char"]]))
        colour = SUPPORT_COLOUR.get(s["status"], "gray")
        text = escape_md(answer[s["start_char"]:s["end_char"]])
        parts.append(f":{colour}-background[{text}]:{colour}[{_tag(s['idx'])}]")
        last = s["end_char"]
    parts.append(escape_md(answer[last:]))
    return "".join(parts)


def _tag(idx: int) -> str:
    return f"\\[S{idx + 1}\\]"


def legend() -> str:
    return " · ".join(f":{colour}-background[{status}]"
                      for status, colour in SUPPORT_COLOUR.items())


def threshold(src: Source, run_id: str) -> float:
    manifest = run_details(src, run_id).get("manifest") or {}
    value = (manifest.get("thresholds") or {}).get("support")
    if value is None:
        from auditor.evidence import SUPPORT_THRESHOLD

        value = SUPPORT_THRESHOLD
    return float(value)


def why_line(sentence: dict[str, Any], cut: float, k: int) -> str:
    """One sentence on why a sentence has (or lacks) support."""
    best = (f"best support anywhere: chunk {escape_md(sentence['best_chunk_id'])} "
            f"(score {sentence['best_score']:.3f})" if sentence["best_chunk_id"] else
            "no candidate chunk")
    if sentence["status"] == "supported":
        served = sentence["served_score"]
        return ("Supported" + (f" by a served chunk (score {served:.3f})" if served else "")
                + (f"; replayed rank {sentence['replayed_rank']}"
                   if sentence["replayed_rank"] else "") + ".")
    if sentence["status"] == "retrievable_not_retrieved":
        rank = sentence["replayed_rank"]
        if rank is None:
            where = "replay does not return its support within the probe depth"
        elif rank > k:
            where = f"replay ranks its support at {rank}, beyond k = {k}"
        else:
            where = f"production did not serve it, though replay now ranks it at {rank}"
        joined = " Supported only by adjacent chunks joined." if sentence["composite"] else ""
        return f"**retrievable_not_retrieved**: {where}; {best}.{joined}"
    if sentence["status"] == "contradicted":
        return (f"**contradicted**: {best}, below the support threshold {cut:.4f}; a retrieved "
                "chunk states another value (below).")
    return (f"**ungrounded**: {best}, below the support threshold {cut:.4f}: no chunk of "
            "the index supports it.")


def doc_url_template(src: Source, run_id: str) -> str:
    """Where a document's source lives: the run's ``doc_url`` setting, else ``AUDITOR_DOC_URL``
    (``{doc_id}`` is replaced by the URL-quoted id)."""
    config = run_details(src, run_id).get("config") or {}
    return str(config.get("doc_url") or os.environ.get("AUDITOR_DOC_URL", ""))


def doc_link(template: str, doc_id: str) -> str | None:
    if "{doc_id}" not in template or not template.startswith(("https://", "http://")):
        return None
    from urllib.parse import quote

    return template.replace("{doc_id}", quote(doc_id, safe=""))


def chunk_card(row: dict[str, Any], texts: dict[str, dict[str, str]],
               titles: dict[str, str], words: set[str], url_template: str) -> None:
    chunk = texts.get(row["chunk_id"], {})
    title = chunk.get("title") or titles.get(row["doc_id"]) or ""
    with st.container(border=True):
        rank = f"rank {int(row['rank'])}" if pd.notna(row.get("rank")) else "not ranked"
        st.markdown(f":blue-badge[{row['origin']}] **{rank}** · score {row['score']:.3f} · "
                    f"chunk {escape_md(row['chunk_id'])} · document "
                    f"{escape_md(row['doc_id'])}"
                    + (f" · *{escape_md(title)}*" if title else ""))
        url = doc_link(url_template, row["doc_id"])
        if url:
            st.link_button("Source", url, icon=":material/open_in_new:")
        if chunk.get("text"):
            st.markdown(widgets.highlight(chunk["text"], words))
        else:
            st.caption("Chunk text is not available here (the store keeps ids; the index "
                       "this run used is not on this machine).")


def sentence_panel(src: Source, run: dict[str, Any], trace: dict[str, Any],
                   sentence: dict[str, Any]) -> None:
    from auditor.sentences import content_words

    colour = SUPPORT_COLOUR.get(sentence["status"], "gray")
    st.markdown(f":{colour}-background[{escape_md(sentence['text'])}]")
    st.markdown(f":{colour}-badge[{sentence['status']}] {STATUS_TEXT.get(sentence['status'])}")
    st.markdown(why_line(sentence, threshold(src, run["run_id"]), int(run["k"])))
    rows = [r for r in trace["support"] if r["idx"] == sentence["idx"]]
    shown = []
    for origin in ("served", "replayed", "index"):
        shown += [r for r in rows if r["origin"] == origin][:CHUNKS_PER_ORIGIN]
    best = sentence["best_chunk_id"]
    if best and all(r["chunk_id"] != best for r in shown):
        shown.append({"origin": "best anywhere", "chunk_id": best,
                      "doc_id": sentence["best_doc_id"], "rank": None,
                      "score": sentence["best_score"]})
    ids = tuple(dict.fromkeys(r["chunk_id"] for r in shown))
    texts = query_data.chunk_texts(src, run["run_id"], ids)
    titles = query_data.titles(src, run["run_id"], tuple(r["doc_id"] for r in shown))
    words = set(content_words(sentence["text"]))
    if not shown:
        st.caption("No chunk was scored for this sentence.")
    template = doc_url_template(src, run["run_id"])
    for row in shown:
        chunk_card(row, texts, titles, words, template)
    conflicts = [r for r in trace.get("conflicts") or [] if r["idx"] == sentence["idx"]]
    if conflicts:
        st.markdown("**Retrieved chunks that state another value**")
    passages = query_data.chunk_texts(src, run["run_id"],
                                      tuple(r["chunk_id"] for r in conflicts))
    for row in conflicts[:CHUNKS_PER_ORIGIN]:
        with st.container(border=True):
            st.markdown(widgets.conflict_md(row))
            text = passages.get(row["chunk_id"], {}).get("text")
            if text:
                st.markdown(widgets.highlight(text, words))


def main() -> None:
    src = widgets.current_source()
    run = widgets.current_run(src)
    st.title("Answer trace")
    query_id = pick_query(src, run["run_id"])
    if not query_id:
        return
    trace = widgets.query_trace(src, run["run_id"], query_id)
    if trace is None:
        return
    result = trace["result"]
    st.markdown(f"**Query {escape_md(query_id)}** · {escape_md(result['query'])}")
    causes = sorted({d["cause"] for d in trace["diagnoses"]} - {DRIFT})
    drifted = any(d["cause"] == DRIFT for d in trace["diagnoses"])
    st.caption("causes of failure: " + (", ".join(causes) if causes else "none")
               + (" · drift: production served different results than the index returns "
                  "today" if drifted else ""))
    widgets.link("queries", "Query details: rankings, targets, causes", run["run_id"],
                 query_id, icon=":material/search:")
    sentences = trace["sentences"]
    if not result.get("answer") or not sentences:
        st.info("No answer was logged for this query, or it has no factual sentence to trace.")
        return
    st.subheader("Answer")
    st.markdown(legend())
    with st.container(border=True):
        st.markdown(coloured_answer(result["answer"], sentences))
    counts = pd.Series([s["status"] for s in sentences]).value_counts()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    by_idx = {s["idx"]: s for s in sentences}
    first = next((s["idx"] for s in sentences if s["status"] != "supported"),
                 sentences[0]["idx"])
    chosen = st.pills("Sentence", list(by_idx), default=first, key=f"sentence_{query_id}",
                      format_func=lambda i: f"S{i + 1} · {by_idx[i]['status']}")
    sentence_panel(src, run, trace, by_idx[chosen if chosen is not None else first])


main()
