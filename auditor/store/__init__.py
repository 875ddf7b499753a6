"""The DuckDB results store: every run, its per-query rows, hits, metrics and quarantine.

One file, several owners: :mod:`.schema` (migrations), :mod:`.connection` (opening the file
and waiting while another process holds it), :mod:`.writer` (write paths), :mod:`.read`
(read paths), :mod:`.sentence_conflicts` (sentences against conflicting chunks),
:mod:`.cache` (the embedding cache), :mod:`.judgment_lists` (versioned
judgment lists and rescorings), :mod:`.gaps` (knowledge gaps), :mod:`.prune` (dropping
old runs' hits) and :mod:`.lake` (Parquet export). :class:`Store` puts them together so
callers hold one object that is cheap to create: it holds a path, not a connection.
"""

from __future__ import annotations

from auditor.store.cache import EmbeddingCache
from auditor.store.connection import (
    BUSY_ENV,
    BUSY_TIMEOUT_S,
    SCAN_MEMORY,
    StoreError,
)
from auditor.store.gaps import GapStore
from auditor.store.judgment_lists import JudgmentLists
from auditor.store.lake import LakeExport
from auditor.store.prune import HitsPruning, PrunedRun
from auditor.store.ranked_ablations import ABLATION_HITS
from auditor.store.read import DEFAULT_MIN_SHARED, Reader, shown_status
from auditor.store.schema import MIGRATIONS
from auditor.store.sentence_conflicts import CONFLICTS
from auditor.store.writer import KEYED_TABLES, Pending, RunStatus, Writer, resume_refusal

__all__ = [
    "ABLATION_HITS",
    "BUSY_ENV",
    "BUSY_TIMEOUT_S",
    "CONFLICTS",
    "DEFAULT_MIN_SHARED",
    "KEYED_TABLES",
    "MIGRATIONS",
    "Pending",
    "PrunedRun",
    "SCAN_MEMORY",
    "RunStatus",
    "Store",
    "StoreError",
    "resume_refusal",
    "shown_status",
]


class Store(Writer, Reader, EmbeddingCache, JudgmentLists, GapStore, HitsPruning,
            LakeExport):
    """One DuckDB file. Cheap to create: it holds a path, not a connection."""
