"""Knowledge gaps reads, cached (the SQL is in ``auditor.store.gaps``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from auditor.store import Store
from dashboards.data import TTL, Source


@st.cache_data(ttl=TTL, show_spinner=False)
def gap_run(src: Source, run_id: str) -> dict[str, Any] | None:
    """Whether the run's gaps were looked for (clusters, chunks, seed, why not)."""
    return Store(Path(src.path)).gap_run(run_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def gaps(src: Source, run_id: str) -> pd.DataFrame:
    """One row per topic, worst first, with its causes as text."""
    rows = Store(Path(src.path)).gaps(run_id)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["terms"] = df["terms"].map(" · ".join)
        df["top_causes"] = df["top_causes"].map(
            lambda causes: ", ".join(f"{cause} {n}" for cause, n in causes))
    return df


@st.cache_data(ttl=TTL, show_spinner=False)
def gap_queries(src: Source, run_id: str, cluster: int) -> pd.DataFrame:
    """The queries of one topic with their causes."""
    return pd.DataFrame(Store(Path(src.path)).gap_queries(run_id, cluster),
                        columns=["query_id", "query", "causes"])
