"""The Compare page's read: ``auditor.compare.compare_runs`` on the pair, cached per store
version (the paired bootstrap is the expensive part: ≈3 s at 100k queries with 1,000
resamples, so a pair is computed once per nightly run, not per visit)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from auditor.compare import Comparison, compare_runs
from auditor.store import Store
from dashboards.data import TTL, Source

RESAMPLES = 1_000  # bootstrap resamples: 95% CI ends stable to ~0.1 SE; ≈3 s at 100k
LIMIT = 200  # regressed / improved queries listed (totals are always given)


@st.cache_data(ttl=6 * TTL, max_entries=16, show_spinner="Comparing runs…")
def comparison(src: Source, baseline: str, current: str, k: int) -> Comparison:
    """The paired comparison of two runs, cached per store version."""
    return compare_runs(Store(Path(src.path)), baseline, current, k=k, resamples=RESAMPLES,
                        limit=LIMIT)
