"""Search backends: the protocol they implement (``protocol``) and the factory that opens
the configured one.

Backends are imported lazily: the Elasticsearch client and torch are heavy, and
``import auditor`` must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditor.backends.fusion import RRF_K, fuse_rrf
from auditor.backends.protocol import Backend, Explainer, Fingerprint, SearchResult
from auditor.errors import BackendError
from auditor.records import VECTOR_MODES

if TYPE_CHECKING:
    from auditor.config import AuditSettings
    from auditor.embed import Encoder

__all__ = ["RRF_K", "Backend", "BackendError", "Explainer", "Fingerprint", "SearchResult",
           "fuse_rrf", "needs_vectors", "open_backend"]


def open_backend(settings: AuditSettings, encoder: Encoder | None = None) -> Backend:
    """The configured backend, with an encoder when the mode needs one or when ablations are
    on (the dense and exact ablations of a miss embed its query). ``encoder`` is the run's
    cached encoder, shared with the tracer; without it the plain model is loaded. Each
    backend gets only its own options, built here from the settings."""
    from auditor.embed import load_encoder

    if encoder is None and needs_vectors(settings):
        encoder = load_encoder(settings.encoder)
    if settings.backend == "elasticsearch":
        from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions

        return ElasticsearchBackend(ElasticsearchOptions.from_settings(settings), encoder)
    from auditor.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.open(settings.index, encoder)


def needs_vectors(settings: AuditSettings) -> bool:
    return settings.mode in VECTOR_MODES or settings.ablations or (
        settings.mode in ("template", "unfiltered")
        and "{{query_vector}}" in (settings.es_template or "")
    )
