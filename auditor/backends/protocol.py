"""The one protocol every search backend implements, and the values it answers with.

Why a module of its own: the backends implement it and the rest of the auditor consumes
it; neither side needs the factory (``auditor.backends.open_backend``) to know the shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from auditor.records import Hit, Level, Mode


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The answer to one query of a batch: hits, or an error reason for that query alone.

    ``latency_ms`` is this query's own time where the backend can tell it (None where a
    batch is answered at once); ``took_ms`` is the server's figure (Elasticsearch ``took``).
    """

    hits: Sequence[Hit]  # a list, or a HitList (columns) from the embedded index
    took_ms: float | None = None
    error: str | None = None
    latency_ms: float | None = field(default=None, compare=False)  # a timing, not the answer


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the index a run was measured against."""

    backend: str
    document_count: int
    chunk_count: int
    content_hash: str
    model_id: str
    params: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "document_count": self.document_count,
            "chunk_count": self.chunk_count,
            "content_hash": self.content_hash,
            "model_id": self.model_id,
            "params": dict(self.params),
        }


@runtime_checkable
class Backend(Protocol):
    """A searchable index of chunks."""

    name: str

    def search_many(
        self, queries: Sequence[str], mode: Mode, depth: int
    ) -> list[SearchResult]:
        """Search every query (in batches inside); one result per query, in order."""
        ...

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Texts by chunk id: ``{chunk_id: {"doc_id", "title", "text"}}``; unknown ids absent."""
        ...

    def contains(self, ids: Sequence[str], level: Level) -> list[bool]:
        """Membership of each id (document ids or chunk ids) in the index."""
        ...

    def iter_ids(self) -> Iterator[tuple[str, str]]:
        """Every ``(chunk_id, doc_id)`` in the index."""
        ...

    def fingerprint(self) -> Fingerprint:
        """Document count, content hash, model id and analyzer parameters."""
        ...

    def analyze(self, texts: Sequence[str]) -> list[list[str]]:
        """The index's own analysis of each text (its lexical terms, in text order), one list
        per text. Why: ``vocabulary_mismatch`` names the query terms a document lacks, and
        only the index's analyzer (stemming, stop words, lowercasing) knows what matches."""
        ...

    def doc_chunks(self, doc_ids: Sequence[str]) -> dict[str, list[str]]:
        """Chunk ids of each document in position order (ties by chunk id); an unknown
        document is absent from the answer. Why: composite support joins adjacent chunks,
        and a document-level target is judged on the text of all its chunks."""
        ...


@runtime_checkable
class Explainer(Protocol):
    """A backend that can say why its lexical query scores a chunk as it does (Elasticsearch
    ``_explain``); optional, so it is not part of :class:`Backend`."""

    def explain_many(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, object]]:
        """For each ``(query, chunk_id)``: ``{"chunk_id", "matched", "score", "explanation"}``
        of the ``bm25`` query, in order; a chunk the query does not match has
        ``matched = False`` and no explanation."""
        ...
