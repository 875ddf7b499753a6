"""Per-query reads, cached: the explorer's filtered, sorted page of queries and one query's
detail (served vs replayed lists, targets and where each ranks, causes, answer trace, chunk
texts). The SQL is in ``auditor.store.read.dashboard_queries``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from auditor.store import Store
from auditor.store.read import dashboard_queries as reads
from auditor.store.read.dashboard_queries import QueryFilter, explorer_metrics, sortable_columns
from auditor.store.read.dashboard_segments import Segment
from dashboards.data import TTL, Source, run_details

__all__ = ["QueryFilter", "explorer_metrics", "sortable_columns"]

# The two latencies, said honestly: the auditor's own replay of the query, and the time
# production logged for serving it. NULL (not measured) shows blank.
LATENCY_LABELS = {"replay_latency_ms": "replay ms", "served_latency_ms": "production ms"}


@st.cache_data(ttl=TTL, show_spinner=False)
def query_page(src: Source, run_id: str, k: int, segment: Segment, flt: QueryFilter,
               page: int, size: int) -> tuple[pd.DataFrame, int]:
    """One page of the explorer's rows and the number of rows matching in all."""
    return reads.query_page(src.path, run_id, k, segment, flt, page, size)


def query_csv(src: Source, run_id: str, k: int, segment: Segment, flt: QueryFilter) -> bytes:
    """Every matching row as CSV (built when the download is clicked, not on page load)."""
    return reads.query_rows(src.path, run_id, k, segment, flt).to_csv(index=False).encode()


# one query ---------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def query_trace(src: Source, run_id: str, query_id: str) -> dict[str, Any]:
    """Everything stored about one query of one run (see ``Store.query_trace``)."""
    store = Store(Path(src.path))
    data = store.query_trace(run_id, query_id)
    data["hits_pruned"] = store.hits_pruned(run_id)  # `auditor prune` dropped the run's hits
    result = data["result"]
    for key in ("served", "cited", "metadata"):
        result[key] = json.loads(result[key]) if result.get(key) else None
    for row in data["diagnoses"]:
        row["evidence"] = json.loads(row["evidence"]) if row["evidence"] else {}
    return data


@st.cache_data(ttl=TTL, show_spinner=False)
def targets(src: Source, run_id: str, query_id: str, level: str) -> pd.DataFrame:
    """Judged-relevant documents of the query (else its silver evidence), each with the rank
    replay gives it at the run's level, its score and chunk."""
    return reads.targets(src.path, run_id, query_id, level)


@st.cache_data(ttl=TTL, show_spinner=False)
def documents_of(src: Source, run_id: str, chunk_ids: tuple[str, ...]) -> dict[str, str]:
    """The document of each chunk id that the run's hits or stored passages know."""
    return reads.documents_of(src.path, run_id, chunk_ids)


@st.cache_data(ttl=TTL, show_spinner=False)
def titles(src: Source, run_id: str, doc_ids: tuple[str, ...]) -> dict[str, str]:
    """Document titles recorded by the corpus pass of the run."""
    return reads.titles(src.path, run_id, doc_ids)


@st.cache_data(ttl=TTL, show_spinner=False)
def chunk_texts(src: Source, run_id: str, chunk_ids: tuple[str, ...]
                ) -> dict[str, dict[str, str]]:
    """Title and text of chunks: the ``passages`` the run stored for its traces, then the
    embedded index the run used for any other chunk (when it is on this machine)."""
    if not chunk_ids:
        return {}
    found = reads.passages(src.path, run_id, chunk_ids)
    missing = tuple(c for c in chunk_ids if c not in found)
    if not missing:
        return found
    path = _chunk_file(run_details(src, run_id))
    return {**(reads.indexed_texts(path, missing) if path else {}), **found}


def _chunk_file(run: dict[str, Any]) -> Path | None:
    params = (run.get("fingerprint") or {}).get("params") or {}
    candidates = [params.get("directory"), (run.get("config") or {}).get("index")]
    for directory in candidates:
        if directory and (Path(directory) / "chunks.jsonl").is_file():
            return Path(directory) / "chunks.jsonl"
    return None


@st.cache_data(ttl=TTL, show_spinner=False)
def traced_queries(src: Source, run_id: str, limit: int = 20) -> pd.DataFrame:
    """Queries with a traced answer, those with the most unsupported sentences first."""
    return reads.traced_queries(src.path, run_id, limit)
