"""One query in depth (the explorer's detail): what was served vs what replay returns now,
the relevant or evidence documents and where each ranks (or why it is missing), the score
gap to rank k, term and ``_explain`` evidence, and the ablation ranks (bm25, dense, exact).

Ranks are at the run's level, as the audit counts them: in a doc-level run, served and
replayed chunks map to their documents, and a document ranks by its first chunk."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from auditor.cases import DRIFT
from auditor.diagnose import RULES
from dashboards import charts, query_data, widgets
from dashboards.data import Source

ABLATION_MODES = ("replayed", "bm25", "dense", "exact", "unfiltered")

# a pruned run (``auditor prune --keep-hits-days``) shows this where its ranked lists were
PRUNED = ("Hits pruned: `auditor prune` dropped this run's ranked lists; its metrics, "
          "sentences and causes are kept, so ranks here are not shown.")

def ablation_ranks(diagnoses: list[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """target id → rank in each mode, from the ``<mode>_rank`` evidence of its causes."""
    ranks: dict[str, dict[str, int | None]] = {}
    for row in diagnoses:
        if not row["target_id"]:
            continue
        found = ranks.setdefault(row["target_id"], {})
        for mode in ABLATION_MODES:
            if f"{mode}_rank" in row["evidence"]:
                found[mode] = row["evidence"][f"{mode}_rank"]
    return ranks


def served_table(src: Source, run: dict[str, Any], trace: dict[str, Any]) -> pd.DataFrame:
    """What production served, at the run's level. At doc level each logged id becomes its
    document (through the run's hits and passages; an id they do not know is taken as a
    document id), documents rank by first appearance, and ``chunk_id`` keeps the logged id
    when any differs from its document."""
    served = pd.DataFrame(trace["result"]["served"] or [], columns=["id", "rank", "score"])
    if run["level"] != "doc" or served.empty:
        return served
    if served["rank"].notna().all():  # served order: by rank when every item has one
        served = served.sort_values("rank", kind="stable")
    docs = query_data.documents_of(src, run["run_id"], tuple(served["id"]))
    served = served.assign(chunk_id=served["id"], id=served["id"].map(lambda i: docs.get(i, i)))
    served = served.drop_duplicates("id")
    served["rank"] = range(1, len(served) + 1)
    return served if (served["chunk_id"] != served["id"]).any() else served.drop(
        columns="chunk_id")


def ranked_hits(trace: dict[str, Any], level: str) -> pd.DataFrame:
    """The replayed hits shown, at the run's level: in a doc-level run one row per document
    at its rank among documents (the rank the targets carry)."""
    hits = pd.DataFrame(trace["hits"], columns=["rank", "chunk_id", "doc_id", "score"])
    if level != "doc":
        return hits
    docs = hits.sort_values("rank").drop_duplicates("doc_id")
    return docs.assign(rank=range(1, len(docs) + 1))


def target_table(src: Source, run: dict[str, Any], trace: dict[str, Any],
                 served: pd.DataFrame) -> pd.DataFrame:
    """Each target with its replayed and served rank, causes and ablation ranks."""
    k = int(run["k"])
    query_id = trace["result"]["query_id"]
    df = query_data.targets(src, run["run_id"], query_id, run["level"])
    served = dict(zip(served["id"], served["rank"], strict=True))
    causes: dict[str, list[str]] = {}
    for row in trace["diagnoses"]:
        if row["target_id"]:
            causes.setdefault(row["target_id"], []).append(row["cause"])
    ablations = ablation_ranks(trace["diagnoses"])
    df["served_rank"] = df["id"].map(served)
    df["in_top_k"] = df["rank"].le(k)
    df["why_missing"] = df["id"].map(lambda i: ", ".join(causes.get(i, [])))
    for mode in ("bm25", "dense", "exact"):
        df[f"{mode}_rank"] = df["id"].map(lambda i, m=mode: ablations.get(i, {}).get(m))
    names = query_data.titles(src, run["run_id"], tuple(df["id"]))
    df["title"] = df["id"].map(names)
    return df


def rank_chart(hits: pd.DataFrame, targets: pd.DataFrame, k: int) -> go.Figure:
    """Replayed score by rank; targets marked (also when they sit below the shown hits)."""
    fig = go.Figure()
    if len(hits):
        fig.add_trace(go.Bar(x=hits["rank"], y=hits["score"], name="replayed hit",
                             marker_color="#90a4ae",
                             hovertemplate="rank %{x}: score %{y:.3f}<extra></extra>"))
    shown = targets.dropna(subset=["rank", "score"])
    fig.add_trace(go.Scatter(x=shown["rank"], y=shown["score"], mode="markers",
                             name="relevant / evidence", marker={"size": 12,
                                                                 "color": "#2e7d32",
                                                                 "symbol": "star"},
                             hovertemplate="rank %{x}: score %{y:.3f}<extra></extra>"))
    fig.add_vline(x=k + 0.5, line_dash="dash", line_color="#c62828",
                  annotation_text=f"k = {k}")
    fig.update_xaxes(title="replayed rank")
    fig.update_yaxes(title="score")
    return charts.layout(fig, height=280)


def served_vs_replayed(trace: dict[str, Any], served: pd.DataFrame, grades: dict[str, Any],
                       level: str) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("**Served (logged)**" + (", as documents" if level == "doc" else ""))
        if served.empty:
            st.caption("Nothing served was logged for this query.")
        else:
            widgets.table(served.assign(grade=served["id"].map(grades)), key="served",
                          height=300)
    with right:
        st.markdown("**Replayed now** (top 20)")
        hits = pd.DataFrame(trace["hits"])
        if hits.empty:
            st.caption(PRUNED if trace.get("hits_pruned") else "Replay returned no hits.")
        else:
            hits["grade"] = hits["doc_id" if level == "doc" else "chunk_id"].map(grades)
            widgets.table(hits, key="replayed", height=300)


def causes(trace: dict[str, Any]) -> None:
    """The query's failure causes, each with its rule and evidence; drift apart."""
    failures = [row for row in trace["diagnoses"] if row["cause"] != DRIFT]
    if any(row["cause"] == DRIFT for row in trace["diagnoses"]):
        st.info("Drift, not a failure: production served different results than the index "
                "returns today (compare the served and replayed lists below).",
                icon=":material/swap_horiz:")
    if not failures:
        st.success("No failure cause for this query.")
        return
    for row in failures:
        target = f" · target {widgets.escape_md(row['target_id'])}" if row["target_id"] else ""
        with st.expander(f"{row['cause']}{target}"):
            st.markdown(f"**Rule:** {widgets.escape_md(RULES.get(row['cause'], ''))}")
            evidence = row["evidence"]
            if evidence.get("missing_terms") is not None:
                st.markdown("**Query terms the document lacks:** "
                            + widgets.escape_md(", ".join(evidence["missing_terms"]) or "none"))
            if evidence.get("score_gap") is not None:
                st.markdown(f"**Score gap to rank {evidence.get('k')}:** "
                            f"{evidence['score_gap']:.3f} (score {evidence['score']:.3f} at "
                            f"rank {evidence['rank']}, {evidence['score_at_k']:.3f} at k)")
            if evidence.get("explain"):
                st.markdown("**Elasticsearch `_explain`:**")
                st.json(evidence["explain"], expanded=False)
            st.json(evidence, expanded=False)


def header(run: dict[str, Any], trace: dict[str, Any]) -> None:
    result = trace["result"]
    k = int(run["k"])
    st.subheader(f"Query {widgets.escape_md(result['query_id'])}")
    st.markdown(widgets.escape_md(result["query"]))
    metrics = trace["metrics"]
    columns = st.columns(6)
    shown = [f"recall@{k}", f"ndcg@{k}", f"mrr@{k}", f"answer_coverage@{k}", f"overlap@{k}"]
    for column, name in zip(columns, shown, strict=False):
        column.metric(name, widgets.number(metrics.get(name)))
    columns[5].metric("replay ms", widgets.number(result.get("replay_latency_ms"), 1),
                      help="time the auditor's replay of this query took; production "
                           f"logged {widgets.number(result.get('served_latency_ms'), 1)} ms "
                           "(— : not measured)")
    if trace.get("hits_pruned"):
        st.warning(PRUNED)
    st.caption(f"replay {result['status']} · {result['n_hits']} hits · logged "
               f"{result.get('logged_at') or '—'}"
               + (f" · error: {widgets.escape_md(result['error'])}" if result.get("error")
                  else ""))
    if result.get("metadata"):
        with st.expander("Metadata"):
            st.json(result["metadata"])
    widgets.link("trace", "Open the answer trace", run["run_id"], result["query_id"],
                 icon=":material/format_list_bulleted:")


def show(src: Source, run: dict[str, Any], trace: dict[str, Any]) -> None:
    """The whole detail of one query (``query_data.query_trace``) in ``run``."""
    query_id = trace["result"]["query_id"]
    k = int(run["k"])
    header(run, trace)
    st.markdown("**Why it failed**")
    causes(trace)
    served = served_table(src, run, trace)
    targets = target_table(src, run, trace, served)
    grades = {row.id: "evidence" if pd.isna(row.grade) else str(int(row.grade))
              for row in targets.itertuples()}
    silver = bool(len(targets)) and bool(targets["silver"].all())
    st.markdown(f"**{'Evidence (silver) documents' if silver else 'Relevant documents'}**"
                " and where replay ranks them")
    if targets.empty:
        st.caption("No judgments and no traced answer evidence for this query.")
    else:
        widgets.table(targets.drop(columns="silver"), key="targets",
                      file_name=f"targets-{query_id}.csv", column_config={
                          "rank": st.column_config.NumberColumn(
                              "rank", help="replayed rank at the run's level; empty = not "
                                           "within the probe depth or not indexed"),
                          "bm25_rank": st.column_config.NumberColumn(
                              "bm25 rank", help="ablation: the query replayed with bm25"),
                          "dense_rank": st.column_config.NumberColumn(
                              "dense rank", help="ablation: approximate dense kNN"),
                          "exact_rank": st.column_config.NumberColumn(
                              "exact kNN rank", help="ablation: exact kNN")})
        st.caption("Ablation ranks come from the diagnosis of missed targets; empty where "
                   "the target was found, or the ablation was not run.")
    st.plotly_chart(rank_chart(ranked_hits(trace, run["level"]), targets, k), key="rank_chart")
    served_vs_replayed(trace, served, grades, run["level"])
