"""Elasticsearch as a backend: replay with ``_msearch``, look chunks up, fingerprint the index.

The pieces: the request bodies of each mode (``es_query``, pure), the client with its
retries and error messages (``es_connection``), reads by id (``es_read``), ``_explain``,
analysis and the fingerprint (``es_diagnostics``), and building the auditor's own index
(``es_index``). This module attaches to an index and answers the :class:`Backend` protocol.

Scores: dense scores are reported as cosine similarity (Elasticsearch returns
``(1 + cos) / 2``, the exact script ``cos + 1``); hits are re-sorted by (score desc, chunk id
asc) unless a template sorts by something else. ``hybrid`` fuses the bm25 and dense answers
client-side with RRF (k = 60). ``exact`` runs on the flat copy of the vectors, else as a
script when the node has painless (or does not say which modules it has); otherwise a
BackendError says exact kNN (hence ``ann_loss``) is not available.

Queries go in ``_msearch`` batches of ``batch_size``, ``concurrency`` batches at a time.
A search that fails inside a batch becomes that query's error; others are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from auditor.backends import es_diagnostics, es_read
from auditor.backends.es_connection import MODULES, Connection, ElasticsearchOptions, error_reason
from auditor.backends.es_index import build_index
from auditor.backends.es_query import (
    EXACT_SUFFIX,
    MAX_CANDIDATES,
    TEMPLATE_MODES,
    ExactStrategy,
    check_template,
    field_problem,
    read_layout,
    search_bodies,
    strip_filters,
)
from auditor.backends.fusion import fuse_rrf
from auditor.backends.protocol import Fingerprint, SearchResult
from auditor.errors import BackendError
from auditor.records import MODE_SYNONYMS, MODES, Chunk, Hit, Level, Mode

if TYPE_CHECKING:
    from auditor.embed import Encoder

__all__ = ["ElasticsearchBackend", "ElasticsearchOptions", "strip_filters"]

log = logging.getLogger(__name__)


class ElasticsearchBackend:
    """An existing index, attached through ``options.fields``; build one with :meth:`build`."""

    name = "elasticsearch"

    def __init__(self, options: ElasticsearchOptions, encoder: Encoder | None = None) -> None:
        self.options = options
        self.index = options.index
        self.fields = options.fields
        self.conn = Connection(options)
        self.client = self.conn.client
        self._encoder = encoder
        self.node = self.conn.node
        self.notes = self.conn.notes()
        for note in self.notes:
            log.info("%s: %s", self.conn.url, note)
        self._template, self._template_sorts = check_template(options.template)
        self._read_index()

    @classmethod
    def build(cls, options: ElasticsearchOptions, chunks: Iterable[Chunk],
              encoder: Encoder | None,
              progress: Callable[[int], None] | None = None) -> ElasticsearchBackend:
        """(Re)create ``options.index`` from ``chunks`` (see ``es_index``), then attach."""
        conn = Connection(options)
        try:
            build_index(conn, options.fields, chunks, encoder, progress)
        finally:
            conn.client.close()
        return cls(options, encoder)

    def _read_index(self) -> None:
        body = self.conn.call(lambda: self.client.indices.get(
            index=self.index, features=["mappings", "settings"]), "reading the index").body
        if not body:  # a pattern that matches no index
            raise self.conn.missing_index()
        self.layout = read_layout(body, self.fields)

    # searching -----------------------------------------------------------------------
    def search_many(self, queries: Sequence[str], mode: Mode, depth: int) -> list[SearchResult]:
        mode = MODE_SYNONYMS.get(mode, mode)  # type: ignore[assignment]
        if mode not in MODES:
            raise BackendError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if not 1 <= depth <= MAX_CANDIDATES:
            raise BackendError(f"depth {depth} is out of range: use 1 to {MAX_CANDIDATES}")
        if mode in TEMPLATE_MODES and self._template is None:
            raise BackendError(f"{mode} mode needs es_template: set it to the production "
                               "request body with {{query}} (and {{query_vector}})")
        if mode == "exact":
            self._exact_strategy()  # fails the whole call when no exact kNN is possible
        size = self.options.batch_size
        batches = [list(queries[start:start + size]) for start in range(0, len(queries), size)]
        workers = min(self.options.concurrency, len(batches))
        if workers <= 1:
            answered = [self._search_batch(batch, mode, depth) for batch in batches]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                answered = list(pool.map(lambda b: self._search_batch(b, mode, depth), batches))
        return [result for batch in answered for result in batch]

    def _search_batch(self, queries: list[str], mode: Mode, depth: int) -> list[SearchResult]:
        vectors: list[list[float]] = []
        if mode in ("dense", "hybrid", "exact") or (
            mode in TEMPLATE_MODES and "{{query_vector}}" in (self._template or "")
        ):
            vectors = self._require_encoder(mode).encode(queries).tolist()
        strategy: ExactStrategy = self._exact_strategy() if mode == "exact" else "flat"
        bodies = [body for row, query in enumerate(queries)
                  for body in search_bodies(self.layout, mode, query,
                                            vectors[row] if vectors else None, depth,
                                            template=self._template, strategy=strategy)]
        answers = self.conn.msearch(bodies)
        if mode != "hybrid":
            return [self._result(answer, mode) for answer in answers]
        results = []
        for row in range(len(queries)):
            lexical = self._result(answers[2 * row], "bm25")
            dense = self._result(answers[2 * row + 1], "dense")
            if lexical.error or dense.error:
                results.append(SearchResult(hits=[], error=lexical.error or dense.error))
                continue
            took = (None if lexical.took_ms is None or dense.took_ms is None
                    else lexical.took_ms + dense.took_ms)
            results.append(SearchResult(fuse_rrf([lexical.hits, dense.hits], depth), took,
                                        latency_ms=took))
        return results

    def _exact_strategy(self) -> ExactStrategy:
        """How exact kNN runs here: the flat copy, else painless, else not at all."""
        if self.layout.exact_vector is not None:
            return "flat"
        if self.layout.vector is not None and (
                not self.node.modules or self.node.has("lang-painless")):
            return "script"
        exact = self.fields["vector"] + EXACT_SUFFIX
        raise BackendError(
            f"exact kNN is not available on index {self.index}: it has no flat-indexed copy "
            f"{exact!r} of the vectors and the node has no painless for script_score, so "
            "ann_loss cannot be checked; rebuild the index with `auditor index build` or add "
            f"a dense_vector field {exact!r} with index_options type flat")

    def _require_encoder(self, mode: str) -> Encoder:
        vector = self.layout.vector
        if vector is None:
            raise BackendError(field_problem(
                self.fields, "vector", f"is not in index {self.index}, so {mode} search "
                "cannot run"))
        if self._encoder is None:
            raise BackendError(f"{mode} search needs an encoder: set `encoder` in the config")
        built_with = self.layout.meta.get("model_id")
        if built_with and built_with != self._encoder.model_id:
            raise BackendError(f"index {self.index} was embedded with {built_with}, the encoder "
                               f"is {self._encoder.model_id}: rebuild the index or change encoder")
        if vector.get("dims") not in (None, self._encoder.dim):
            raise BackendError(f"field {self.fields['vector']!r} has {vector['dims']} dims, "
                               f"the encoder gives {self._encoder.dim}: use the index's model")
        return self._encoder

    def _result(self, answer: dict[str, Any], mode: str) -> SearchResult:
        if "error" in answer:
            reason = error_reason(answer["error"])
            if "script" in reason and not self.node.has("lang-painless"):
                reason += f" (this node has no lang-painless module: {MODULES['lang-painless']})"
            return SearchResult(hits=[], error=self.conn.scrub(reason))
        to_cosine = self._to_cosine(mode)
        scored = []
        for hit in answer["hits"]["hits"]:
            score = hit.get("_score")
            if score is not None and to_cosine is not None:
                score = to_cosine(score)
            if mode in TEMPLATE_MODES:
                chunk_id = es_read.first_value(hit, self.fields["chunk_id"]) or hit["_id"]
                doc_id = es_read.first_value(hit, self.fields["doc_id"]) or ""
            else:
                _, chunk_id, doc_id = hit["sort"]
            scored.append((str(chunk_id), str(doc_id or ""), score))
        if not (mode in TEMPLATE_MODES and self._template_sorts) and all(
                s is not None for *_, s in scored):
            scored.sort(key=lambda item: (-item[2], item[0]))
        hits = [Hit(chunk_id, doc_id, rank, float(score or 0.0))
                for rank, (chunk_id, doc_id, score) in enumerate(scored, start=1)]
        # msearch answers each sub-search with its own took: the per-query figure
        took = answer.get("took")
        took_ms = float(took) if isinstance(took, int | float) else None
        return SearchResult(hits=hits, took_ms=took_ms, latency_ms=took_ms)

    def _to_cosine(self, mode: str) -> Callable[[float], float] | None:
        """Dense scores back to cosine: kNN gives (1 + cos) / 2, the exact script cos + 1."""
        if mode == "exact" and self._exact_strategy() == "script":
            return lambda score: score - 1.0
        vector = self.layout.exact_vector if mode == "exact" else self.layout.vector
        if mode in ("dense", "exact") and (vector or {}).get("similarity") in (
                "cosine", "dot_product"):
            return lambda score: 2.0 * score - 1.0
        return None

    # reads, analysis, provenance (see es_read, es_diagnostics) --------------------------
    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return es_read.fetch(self.conn, self.layout, chunk_ids)

    def contains(self, ids: Sequence[str], level: Level) -> list[bool]:
        return es_read.contains(self.conn, self.layout, ids, level)

    def iter_ids(self) -> Iterator[tuple[str, str]]:
        return es_read.iter_ids(self.conn, self.layout)

    def doc_chunks(self, doc_ids: Sequence[str]) -> dict[str, list[str]]:
        return es_read.doc_chunks(self.conn, self.layout, doc_ids)

    def fingerprint(self) -> Fingerprint:
        self._read_index()
        encoder_model = (self._encoder.model_id
                         if self._encoder and self.layout.vector is not None else "")
        return es_diagnostics.fingerprint(self.conn, self.layout, encoder_model, self._template)

    def explain(self, query: str, chunk_id: str) -> dict[str, Any]:
        return es_diagnostics.explain(self.conn, self.layout, query, chunk_id)

    def explain_many(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return es_diagnostics.explain_many(self.conn, self.layout, pairs,
                                           self.options.batch_size)

    def analyze(self, texts: Sequence[str], field: str = "text") -> list[list[str]]:
        return es_diagnostics.analyze(self.conn, self.layout, texts, field)

    def close(self) -> None:
        self.client.close()
