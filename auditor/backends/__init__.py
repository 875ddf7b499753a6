"""The one protocol every search backend implements, and the factory that opens one.

Backends are imported lazily: the Elasticsearch client and torch are heavy, and
``import auditor`` must stay light.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from auditor.records import VECTOR_MODES, Hit, Level, Mode

if TYPE_CHECKING:
    from auditor.config import AuditSettings
    from auditor.embed import Encoder

RRF_K = 60


class BackendError(Exception):
    """A backend cannot do what was asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The answer to one query of a batch: hits, or an error reason for that query alone.

    ``latency_ms`` is this query's own time where the backend can tell it (None where a
    batch is answered at once); ``took_ms`` is the server's figure (Elasticsearch ``took``).
    """

    hits: list[Hit]
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


def fuse_rrf(rankings: Iterable[list[Hit]], depth: int, k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank).

    Ties break by chunk id ascending, as every ranking in this project does.
    """
    scores: dict[str, float] = {}
    docs: dict[str, str] = {}
    for ranking in rankings:
        for hit in ranking:
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + hit.rank)
            docs[hit.chunk_id] = hit.doc_id
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:depth]
    return [
        Hit(chunk_id=cid, doc_id=docs[cid], rank=rank, score=score)
        for rank, (cid, score) in enumerate(ordered, start=1)
    ]


def open_backend(settings: AuditSettings, encoder: Encoder | None = None) -> Backend:
    """The configured backend, with an encoder when the mode needs one or when ablations are
    on (the dense and exact ablations of a miss embed its query). ``encoder`` is the run's
    cached encoder, shared with the tracer; without it the plain model is loaded."""
    from auditor.embed import load_encoder

    if encoder is None and needs_vectors(settings):
        encoder = load_encoder(settings.encoder)
    if settings.backend == "elasticsearch":
        from auditor.backends.elasticsearch import ElasticsearchBackend

        return ElasticsearchBackend(settings, encoder)
    from auditor.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.open(settings.index, encoder)


def needs_vectors(settings: AuditSettings) -> bool:
    return settings.mode in VECTOR_MODES or settings.ablations or (
        settings.mode in ("template", "unfiltered")
        and "{{query_vector}}" in (settings.es_template or "")
    )
