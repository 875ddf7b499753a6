"""Corpus coverage and scatter reads, cached (the SQL is in
``auditor.store.read.dashboard_corpus``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from auditor.store.read import dashboard_corpus as reads
from auditor.store.read.dashboard_corpus import DOC_FILTERS, CorpusSummary
from dashboards.data import TTL, Source

__all__ = ["DOC_FILTERS", "CorpusSummary"]


@st.cache_data(ttl=TTL, show_spinner=False)
def corpus_summary(src: Source, run_id: str) -> CorpusSummary:
    """Documents, coverage at k, never-retrieved and unreachable counts, Gini."""
    return reads.corpus_summary(src.path, run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def lorenz(src: Source, run_id: str) -> pd.DataFrame:
    """Share of retrievals held by the least-retrieved share of documents, sampled."""
    return reads.lorenz(src.path, run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def by_collection(src: Source, run_id: str) -> pd.DataFrame:
    """Coverage per collection (the document id's prefix)."""
    return reads.by_collection(src.path, run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def retrieval_histogram(src: Source, run_id: str) -> pd.DataFrame:
    """Documents by how many queries retrieved them at k (log-spaced bins above 10)."""
    return reads.retrieval_histogram(src.path, run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def documents(src: Source, run_id: str, which: str, page: int, size: int
              ) -> tuple[pd.DataFrame, int]:
    """A page of documents matching ``which`` (a key of DOC_FILTERS), least retrieved first."""
    return reads.documents(src.path, run_id, which, page, size)


def documents_csv(src: Source, run_id: str, which: str) -> bytes:
    """Every matching document as CSV (built when the download is clicked)."""
    return reads.all_documents(src.path, run_id, which).to_csv(index=False).encode()


# scatter -----------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def scatter_distribution(src: Source, run_id: str) -> pd.DataFrame:
    """Queries by scatter size (documents and chunks); size null = no supportable sentence."""
    return reads.scatter_distribution(src.path, run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def worst_scatter(src: Source, run_id: str, k: int, limit: int = 20) -> pd.DataFrame:
    """The queries whose answer needs the most documents, with their sources."""
    return reads.worst_scatter(src.path, run_id, k, limit)
