"""Elasticsearch as a backend: replay with ``_msearch``, look chunks up, fingerprint the index.

``bm25`` is a ``multi_match`` of type ``best_fields`` over title and text (each chunk scores
by its better field: the usual production default). ``dense`` is a top-level ``knn`` with
``k = depth`` and ``num_candidates = max(100, 2 * depth)`` capped at 10,000. Both sort by
``(_score desc, chunk_id asc)`` on the server, so ties at the depth cut-off fall as everywhere
in this project; dense scores are reported as cosine similarity (Elasticsearch returns
``(1 + cos) / 2``). ``hybrid`` fuses both client-side with RRF (k = 60). ``template`` fills
the production request body ``es_template``: ``{{query}}`` becomes the JSON-escaped query
(write it inside quotes), ``{{query_vector}}`` the query embedding (write it bare); ``size``
is set to the depth and hits are re-sorted by (score desc, chunk id asc) unless the template
sorts by something else.

Two modes exist for diagnosis ablations. ``exact`` is brute-force kNN: a top-level ``knn``
on the ``flat``-indexed copy ``<vector>_exact`` that ``es_index`` writes; on an index without
it, a ``script_score`` with ``cosineSimilarity`` when the node has painless (or does not say
which modules it has); otherwise a BackendError says exact kNN (hence ``ann_loss``) is not
available. ``unfiltered`` is the template with its filters stripped (:func:`strip_filters`).

Queries go in ``_msearch`` batches of ``batch_size``, ``es_concurrency`` batches at a time.
A search that fails inside a batch becomes that query's error; others are unaffected.
Connection, retries and error messages: see ``es_index``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from auditor.backends import BackendError, Fingerprint, SearchResult, fuse_rrf
from auditor.backends.es_index import (
    EXACT_SUFFIX,
    MODULES,
    Connection,
    backoff,
    build_index,
    canonical_sha256,
    error_reason,
    field_mapping,
    max_seq_nos,
    ndjson,
    resolve_fields,
)
from auditor.records import MODE_SYNONYMS, MODES, Chunk, Hit, Level, Mode

if TYPE_CHECKING:
    from auditor.config import AuditSettings
    from auditor.embed import Encoder

log = logging.getLogger(__name__)

KEYWORD_TYPES = ("keyword", "constant_keyword")
TEXT_TYPES = ("text", "match_only_text")
NUMERIC_TYPES = ("long", "integer", "short", "byte", "unsigned_long", "double", "float")
LOOKUP_BATCH = 1000
ANALYZE_BATCH = 200  # artificial documents per _mtermvectors request
MAX_CANDIDATES = 10_000
TEMPLATE_MODES = ("template", "unfiltered")
# painless: cosine + 1 keeps script scores non-negative, as script_score requires
EXACT_SCRIPT = "cosineSimilarity(params.query_vector, params.field) + 1.0"


def _first(hit: dict[str, Any], field: str) -> str | None:
    values = hit.get("fields", {}).get(field)
    return str(values[0]) if values else None


def strip_filters(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a search body without its filters, and the JSON paths of what was removed.

    Removed: the top-level ``post_filter``; the ``filter`` of every ``bool`` query; the
    ``filter`` of every ``knn`` (the top-level section, one object or a list, the ``knn``
    query and the ``knn`` retriever) and of every ``standard`` retriever, at any depth except
    inside aggregations (which do not choose hits). Kept: ``must_not`` (query logic, not a
    filter), ``constant_score.filter`` (it is the query itself), ``min_score``. A ``bool``
    with ``should`` but no ``must`` gets ``minimum_should_match: 0`` (unless it sets one),
    since without its filter Elasticsearch would start to require a ``should`` match.
    """
    removed: list[str] = []

    def walk(node: Any, path: str, parent: str | None) -> Any:
        if isinstance(node, list):
            return [walk(item, f"{path}[{i}]", parent) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            inner = f"{path}.{key}" if path else key
            if key in ("aggs", "aggregations") or (key == "post_filter" and not path):
                if key == "post_filter":
                    removed.append(inner)
                else:
                    out[key] = value
                continue
            if key == "filter" and parent in ("bool", "knn", "standard"):
                removed.append(inner)
                continue
            out[key] = walk(value, inner, key)
        if parent == "bool" and "filter" in node and "should" in out and "must" not in out:
            out.setdefault("minimum_should_match", 0)
        return out

    stripped = walk(body, "", None)
    return stripped, removed


def _flatten_explanation(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The term weights of an explanation tree: ``weight(field:term in doc)`` leaves."""
    found = []
    description = str(node.get("description", ""))
    if description.startswith("weight(") and ":" in description:
        field, _, rest = description[len("weight("):].partition(":")
        term = rest.split(" in ", 1)[0]
        found.append({"field": field, "term": term, "score": float(node.get("value", 0.0))})
        return found
    for child in node.get("details", []):
        found.extend(_flatten_explanation(child))
    return found


def _dotted(source: dict[str, Any], path: str) -> Any:
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class ElasticsearchBackend:
    """An existing index, attached through ``settings.es_fields``; build one with :meth:`build`."""

    name = "elasticsearch"

    def __init__(self, settings: AuditSettings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.index = settings.es_index
        self.fields = resolve_fields(settings.es_fields)
        self.conn = Connection(settings)
        self.client = self.conn.client
        self._encoder = encoder
        self.node = self.conn.node
        self.notes = self.conn.notes()
        for note in self.notes:
            log.info("%s: %s", self.conn.url, note)
        self._template, self._template_sorts = self._check_template(settings.es_template)
        self._read_index()

    @classmethod
    def build(cls, settings: AuditSettings, chunks: Iterable[Chunk], encoder: Encoder | None,
              progress: Callable[[int], None] | None = None) -> ElasticsearchBackend:
        """(Re)create ``settings.es_index`` from ``chunks`` (see ``es_index``), then attach."""
        conn = Connection(settings)
        try:
            build_index(conn, resolve_fields(settings.es_fields), chunks, encoder, progress)
        finally:
            conn.client.close()
        return cls(settings, encoder)

    # the index -----------------------------------------------------------------------
    def _read_index(self) -> None:
        body = self.conn.call(lambda: self.client.indices.get(
            index=self.index, features=["mappings", "settings"]), "reading the index").body
        if not body:  # a pattern that matches no index
            raise self.conn.missing_index()
        self.indices: dict[str, Any] = dict(sorted(body.items()))
        for name, index in self.indices.items():
            properties = index["mappings"].get("properties", {})
            for role, types in (("chunk_id", KEYWORD_TYPES), ("doc_id", KEYWORD_TYPES),
                                ("text", TEXT_TYPES)):
                self._check_field(name, properties, role, types, required=True)
        name, first = next(iter(self.indices.items()))
        self.meta: dict[str, Any] = first["mappings"].get("_meta", {}).get("auditor", {})
        self.properties: dict[str, Any] = first["mappings"].get("properties", {})
        has_title = self._check_field(name, self.properties, "title", TEXT_TYPES, required=False)
        self.lexical_fields = [self.fields["text"]]
        if has_title:
            self.lexical_fields.insert(0, self.fields["title"])
        self.vector = field_mapping(self.properties, self.fields["vector"])
        if self.vector is not None and self.vector.get("type") != "dense_vector":
            kind = self.vector.get("type", "object")
            raise BackendError(self._field_problem("vector", f"is a {kind}, not a dense_vector"))
        exact = field_mapping(self.properties, self.fields["vector"] + EXACT_SUFFIX)
        self.exact_vector = exact if (exact or {}).get("type") == "dense_vector" else None
        position = field_mapping(self.properties, self.fields["position"])
        self.position_field = (self.fields["position"] if (position or {}).get("type")
                               in NUMERIC_TYPES else None)

    def _check_field(self, index: str, properties: dict[str, Any], role: str,
                     types: tuple[str, ...], required: bool) -> bool:
        mapping = field_mapping(properties, self.fields[role])
        if mapping is None:
            if required:
                raise BackendError(self._field_problem(role, f"is not in index {index}"))
            return False
        kind = mapping.get("type", "object")
        if kind not in types:
            raise BackendError(self._field_problem(
                role, f"is a {kind} field in index {index}, it must be {' or '.join(types)}"))
        return True

    def _field_problem(self, role: str, problem: str) -> str:
        return (f"field {self.fields[role]!r} ({role}) {problem}: map {role} to the right field "
                f'with es_fields, e.g. es_fields = {{{role} = "my_{role}"}}')

    @staticmethod
    def _check_template(template: str | None) -> tuple[str | None, bool]:
        if template is None:
            return None, False
        try:
            sample = template.replace("{{query}}", "q").replace("{{query_vector}}", "[0]")
            filled = json.loads(sample)
        except ValueError as exc:
            raise BackendError(f"es_template is not JSON once filled ({exc}): write "
                               '"{{query}}" inside quotes and {{query_vector}} bare') from None
        if not isinstance(filled, dict):
            raise BackendError("es_template must be a JSON object: a search request body")
        return template, "sort" in filled

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
        size = self.settings.batch_size
        batches = [list(queries[start:start + size]) for start in range(0, len(queries), size)]
        workers = min(self.settings.es_concurrency, len(batches))
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
        bodies: list[dict[str, Any]] = []
        for row, query in enumerate(queries):
            if mode in ("bm25", "hybrid"):
                bodies.append({"query": self.bm25_query(query), **self._common(depth)})
            if mode in ("dense", "hybrid"):
                bodies.append({"knn": self._knn(vectors[row], depth), **self._common(depth)})
            if mode == "exact":
                bodies.append({**self._exact(vectors[row], depth), **self._common(depth)})
            if mode in TEMPLATE_MODES:
                body = self._template_body(query, vectors[row] if vectors else None, depth)
                bodies.append(strip_filters(body)[0] if mode == "unfiltered" else body)
        answers = self._msearch(bodies)
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

    def _common(self, depth: int) -> dict[str, Any]:
        # The ids come back as sort values (doc values, read in the query phase): with no
        # fetch phase at all, a search costs a sixth of one that returns fields or _source.
        return {
            "size": depth,
            "_source": False,
            "stored_fields": "_none_",
            "track_total_hits": False,
            "sort": self._id_sort(),
        }

    def _id_sort(self) -> list[dict[str, str]]:
        # chunk ids are unique, so doc_id never changes the order; it is there to be returned
        return [{"_score": "desc"}, {self.fields["chunk_id"]: "asc"},
                {self.fields["doc_id"]: "asc"}]

    def bm25_query(self, query: str) -> dict[str, Any]:
        """The lexical query of ``bm25`` mode (also what :meth:`explain` explains)."""
        return {"multi_match": {"query": query, "fields": self.lexical_fields,
                                "type": "best_fields"}}

    def _knn(self, vector: list[float], depth: int) -> dict[str, Any]:
        return {"field": self.fields["vector"], "query_vector": vector, "k": depth,
                "num_candidates": min(MAX_CANDIDATES, max(100, 2 * depth))}

    def _exact_strategy(self) -> Literal["flat", "script"]:
        """How exact kNN runs here: the flat copy, else painless, else not at all."""
        if self.exact_vector is not None:
            return "flat"
        if self.vector is not None and (not self.node.modules or self.node.has("lang-painless")):
            return "script"
        exact = self.fields["vector"] + EXACT_SUFFIX
        raise BackendError(
            f"exact kNN is not available on index {self.index}: it has no flat-indexed copy "
            f"{exact!r} of the vectors and the node has no painless for script_score, so "
            "ann_loss cannot be checked; rebuild the index with `auditor index build` or add "
            f"a dense_vector field {exact!r} with index_options type flat")

    def _exact(self, vector: list[float], depth: int) -> dict[str, Any]:
        if self._exact_strategy() == "flat":
            knn = self._knn(vector, depth)
            knn["field"] = self.fields["vector"] + EXACT_SUFFIX
            return {"knn": knn}
        script = {"source": EXACT_SCRIPT,
                  "params": {"query_vector": vector, "field": self.fields["vector"]}}
        return {"query": {"script_score": {
            "query": {"exists": {"field": self.fields["vector"]}}, "script": script}}}

    def _template_body(self, query: str, vector: list[float] | None, depth: int) -> dict[str, Any]:
        text = (self._template or "").replace("{{query}}", json.dumps(query)[1:-1])
        if vector is not None:
            text = text.replace("{{query_vector}}", json.dumps(vector))
        body: dict[str, Any] = json.loads(text)
        body["size"] = depth
        body["fields"] = [*body.get("fields", []), self.fields["chunk_id"], self.fields["doc_id"]]
        body.setdefault("_source", False)
        return body

    def _require_encoder(self, mode: str) -> Encoder:
        if self.vector is None:
            raise BackendError(self._field_problem(
                "vector", f"is not in index {self.index}, so {mode} search cannot run"))
        if self._encoder is None:
            raise BackendError(f"{mode} search needs an encoder: set `encoder` in the config")
        built_with = self.meta.get("model_id")
        if built_with and built_with != self._encoder.model_id:
            raise BackendError(f"index {self.index} was embedded with {built_with}, the encoder "
                               f"is {self._encoder.model_id}: rebuild the index or change encoder")
        if self.vector.get("dims") not in (None, self._encoder.dim):
            raise BackendError(f"field {self.fields['vector']!r} has {self.vector['dims']} dims, "
                               f"the encoder gives {self._encoder.dim}: use the index's model")
        return self._encoder

    def _msearch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per body; searches the node rejected one by one (429) are sent again."""
        answers: list[dict[str, Any]] = [{} for _ in bodies]
        pending = list(range(len(bodies)))
        for attempt in range(self.conn.max_retries + 1):
            retry = []
            for i, answer in zip(pending, self._send([bodies[i] for i in pending]), strict=True):
                answers[i] = answer
                if answer.get("status") == 429 and attempt < self.conn.max_retries:
                    retry.append(i)
            if not retry:
                break
            time.sleep(backoff(attempt))
            pending = retry
        return answers

    def _send(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from elasticsearch import ApiError

        try:
            return self.conn.call(
                lambda: self.client.msearch(index=self.index, body=ndjson(bodies)),
                "the search", passthrough=(400,),
            ).body["responses"]
        except ApiError as exc:  # one body the node cannot parse fails the whole request
            if len(bodies) > 1:
                return [answer for body in bodies for answer in self._send([body])]
            return [{"error": exc.body, "status": exc.meta.status}]

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
                chunk_id = _first(hit, self.fields["chunk_id"]) or hit["_id"]
                doc_id = _first(hit, self.fields["doc_id"]) or ""
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
        vector = self.exact_vector if mode == "exact" else self.vector
        if mode in ("dense", "exact") and (vector or {}).get("similarity") in (
                "cosine", "dot_product"):
            return lambda score: 2.0 * score - 1.0
        return None

    # lookups -------------------------------------------------------------------------
    def _search(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        return self.conn.call(lambda: self.client.search(index=self.index, **body), what).body

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        chunk, doc, title, text = (self.fields[r] for r in ("chunk_id", "doc_id", "title", "text"))
        wanted = list(dict.fromkeys(chunk_ids))
        found: dict[str, dict[str, str]] = {}
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start:start + LOOKUP_BATCH]
            body = self._search({"query": {"terms": {chunk: batch}}, "size": len(batch),
                                 "fields": [chunk, doc], "_source": [title, text]},
                                "fetching chunks")
            for hit in body["hits"]["hits"]:
                source = hit.get("_source", {})
                found[_first(hit, chunk) or hit["_id"]] = {
                    "doc_id": _first(hit, doc) or "",
                    "title": str(_dotted(source, title) or ""),
                    "text": str(_dotted(source, text) or ""),
                }
        return found

    def contains(self, ids: Sequence[str], level: Level) -> list[bool]:
        field = self.fields["doc_id" if level == "doc" else "chunk_id"]
        wanted = list(dict.fromkeys(ids))
        present: set[str] = set()
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start:start + LOOKUP_BATCH]
            aggs = {"present": {"terms": {"field": field, "size": len(batch), "include": batch}}}
            body = self._search({"size": 0, "query": {"terms": {field: batch}}, "aggs": aggs},
                                "looking ids up")
            present.update(bucket["key"] for bucket in body["aggregations"]["present"]["buckets"])
        return [item in present for item in ids]

    def iter_ids(self) -> Iterator[tuple[str, str]]:
        """Every (chunk_id, doc_id) by chunk id, paged in a point in time when the node can."""
        from elasticsearch import ApiError

        body: dict[str, Any] = {"size": LOOKUP_BATCH, "sort": self._id_sort()[1:],
                                "_source": False, "stored_fields": "_none_",
                                "track_total_hits": False}
        pit: str | None = None
        try:
            pit = self.conn.call(lambda: self.client.open_point_in_time(
                index=self.index, keep_alive="2m"), "opening a point in time",
                passthrough=(400, 403, 405)).body["id"]
        except ApiError as exc:
            log.warning("no point in time on %s (%s): paging the live index, so writes during "
                        "the scan may be missed or seen twice", self.index, error_reason(exc.body))
        try:
            while True:
                if pit is not None:
                    body["pit"] = {"id": pit, "keep_alive": "2m"}
                    page = self.conn.call(lambda: self.client.search(**body), "listing ids").body
                    pit = page.get("pit_id", pit)
                else:
                    page = self._search(body, "listing ids")
                hits = page["hits"]["hits"]
                for hit in hits:
                    chunk_id, doc_id = hit["sort"][:2]  # a PIT adds a _shard_doc tiebreak
                    if chunk_id is None:  # missing values sort last: nothing more to list
                        log.warning("index %s has chunks without %s: they are not listed",
                                    self.index, self.fields["chunk_id"])
                        return
                    yield str(chunk_id), str(doc_id or "")
                if len(hits) < LOOKUP_BATCH:
                    return
                chunk_id, doc_id, *tiebreak = hits[-1]["sort"]
                body["search_after"] = [chunk_id, doc_id or "", *tiebreak]  # ids are unique
        finally:
            if pit is not None:
                try:
                    self.client.options(ignore_status=404).close_point_in_time(id=pit)
                except Exception:  # it expires by itself after keep_alive
                    log.info("could not close point in time on %s", self.index)

    def fingerprint(self) -> Fingerprint:
        """Cluster version, index UUIDs, counts, mapping hash, model and ranking parameters.

        ``content_hash`` is the corpus hash recorded at build time (the embedded index's
        formula) while no document changed since; otherwise a hash of the index state
        (UUIDs, sequence numbers, mapping), which any write changes.
        """
        self._read_index()
        chunk_count = int(self.conn.call(lambda: self.client.count(index=self.index),
                                         "counting chunks").body["count"])
        cardinality = {"field": self.fields["doc_id"], "precision_threshold": 40000}
        docs = self._search({"size": 0, "aggs": {"docs": {"cardinality": cardinality}}},
                            "counting documents")["aggregations"]["docs"]["value"]
        max_seq_no = max_seq_nos(self.conn, self.index)
        uuids = [index["settings"]["index"]["uuid"] for index in self.indices.values()]
        mapping_hash = canonical_sha256({n: i["mappings"] for n, i in self.indices.items()})
        unchanged = bool(len(self.indices) == 1 and self.meta.get("content_hash")
                         and self.meta.get("max_seq_no") == sum(max_seq_no.values())
                         and self.meta.get("chunk_count") == chunk_count)
        content_hash = self.meta["content_hash"] if unchanged else canonical_sha256(
            {"uuids": uuids, "max_seq_no": max_seq_no, "chunks": chunk_count,
             "mapping": mapping_hash})
        settings = next(iter(self.indices.values()))["settings"]["index"]
        model_id = self.meta.get("model_id") or (
            self._encoder.model_id if self._encoder and self.vector is not None else "")
        return Fingerprint(
            backend=self.name,
            document_count=int(docs),
            chunk_count=chunk_count,
            content_hash=content_hash,
            model_id=model_id,
            params={
                "es_version": self.node.version,
                "index": self.index,
                "index_uuids": uuids,
                "mapping_sha256": mapping_hash,
                "content_hash_kind": "corpus" if unchanged else "index-state",
                "max_seq_no": max_seq_no,
                "fields": dict(self.fields),
                "analyzers": {f: (field_mapping(self.properties, f) or {}).get(
                    "analyzer", "standard") for f in self.lexical_fields},
                "similarity": settings.get("similarity", {}).get(
                    "default", {"type": "BM25", "k1": 1.2, "b": 0.75}),
                "bm25": {"query": "multi_match", "type": "best_fields",
                         "fields": self.lexical_fields},
                "knn": {"num_candidates": "max(100, 2*depth) capped at 10000",
                        "index_options": (self.vector or {}).get("index_options"),
                        "similarity": (self.vector or {}).get("similarity"),
                        "exact": ("flat copy" if self.exact_vector is not None
                                  else "script_score or unavailable")},
                "hybrid": {"fusion": "rrf", "k": 60},
                "template_sha256": canonical_sha256(self._template) if self._template else None,
                "node_modules": list(self.node.modules),
            },
        )

    # evidence primitives -------------------------------------------------------------
    def explain(self, query: str, chunk_id: str) -> dict[str, Any]:
        """Why the bm25 query gives this chunk its score: ``_explain`` of that query."""
        found = self._search({"query": {"term": {self.fields["chunk_id"]: chunk_id}},
                              "size": 1, "_source": False}, "finding the chunk")["hits"]["hits"]
        if not found:
            raise BackendError(f"chunk {chunk_id!r} is not in index {self.index}: "
                               "check the id against the index")
        target = found[0]
        body = self.conn.call(lambda: self.client.explain(
            index=target["_index"], id=target["_id"], query=self.bm25_query(query)),
            "explaining a score").body
        explanation = body.get("explanation", {})
        return {"chunk_id": chunk_id, "matched": bool(body.get("matched")),
                "score": float(explanation.get("value", 0.0)), "explanation": explanation}

    def explain_many(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """``_explain`` of the bm25 query for many ``(query, chunk_id)`` pairs in ``_msearch``
        batches: each search is the bm25 query with a ``post_filter`` on the chunk id (a
        post filter changes neither scores nor explanations) and ``explain: true``."""
        bodies = [{"query": self.bm25_query(query), "size": 1, "explain": True,
                   "_source": False, "post_filter": {"term": {self.fields["chunk_id"]: chunk}}}
                  for query, chunk in pairs]
        explained = []
        for start in range(0, len(bodies), self.settings.batch_size):
            batch = pairs[start:start + self.settings.batch_size]
            answers = self._msearch(bodies[start:start + self.settings.batch_size])
            for (_, chunk_id), answer in zip(batch, answers, strict=True):
                if "error" in answer:
                    explained.append({"chunk_id": chunk_id, "matched": False, "score": 0.0,
                                      "explanation": None,
                                      "error": self.conn.scrub(error_reason(answer["error"]))})
                    continue
                hits = answer["hits"]["hits"]
                explanation = hits[0].get("_explanation") if hits else None
                explained.append({
                    "chunk_id": chunk_id, "matched": bool(hits),
                    "score": float(hits[0]["_score"]) if hits else 0.0,
                    "terms": _flatten_explanation(explanation) if explanation else [],
                    "explanation": explanation,
                })
        return explained

    def analyze(self, texts: Sequence[str], field: str = "text") -> list[list[str]]:
        """The tokens the index makes of each text in a field (a role name or a field name),
        in order, via ``_mtermvectors`` of artificial documents (``ANALYZE_BATCH`` a request).
        The field's own analyzer runs on each text; tokens come back by position. Should the
        node refuse term vectors for the field, each text goes to ``_analyze`` instead."""
        name = self.fields.get(field, field)
        index = next(iter(self.indices))
        tokens: list[list[str]] = []
        for start in range(0, len(texts), ANALYZE_BATCH):
            batch = list(texts[start:start + ANALYZE_BATCH])
            docs = [{"_index": index, "doc": {name: text}, "fields": [name], "positions": True,
                     "offsets": True, "term_statistics": False, "field_statistics": False}
                    for text in batch]
            body = self.conn.call(lambda d=docs: self.client.mtermvectors(docs=d),
                                  "analyzing text").body
            for text, doc in zip(batch, body["docs"], strict=True):
                if "error" in doc:
                    tokens.append(self._analyze_one(text, name))
                    continue
                terms = doc.get("term_vectors", {}).get(name, {}).get("terms", {})
                placed = sorted((token.get("position", 0), token.get("start_offset", 0), term)
                                for term, entry in terms.items() for token in entry["tokens"])
                tokens.append([term for *_, term in placed])
        return tokens

    def _analyze_one(self, text: str, name: str) -> list[str]:
        body = self.conn.call(lambda: self.client.indices.analyze(
            index=next(iter(self.indices)), field=name, text=text), "analyzing text").body
        return [token["token"] for token in body.get("tokens", [])]

    def doc_chunks(self, doc_ids: Sequence[str]) -> dict[str, list[str]]:
        """Chunk ids by document: a terms query on the doc id field, sorted by doc id, then
        position (when the index maps a numeric ``position`` field; es_fields can name it),
        then chunk id, paged with ``search_after``. Unknown documents are absent."""
        doc, chunk = self.fields["doc_id"], self.fields["chunk_id"]
        sort: list[dict[str, str]] = [{doc: "asc"}, {chunk: "asc"}]
        if self.position_field is not None:
            sort.insert(1, {self.position_field: "asc"})
        wanted = list(dict.fromkeys(doc_ids))
        found: dict[str, list[str]] = {}
        for start in range(0, len(wanted), LOOKUP_BATCH):
            body: dict[str, Any] = {"query": {"terms": {doc: wanted[start:start + LOOKUP_BATCH]}},
                                    "size": LOOKUP_BATCH, "sort": sort, "_source": False,
                                    "stored_fields": "_none_", "track_total_hits": False}
            while True:
                hits = self._search(body, "listing a document's chunks")["hits"]["hits"]
                for hit in hits:
                    found.setdefault(str(hit["sort"][0]), []).append(str(hit["sort"][-1]))
                if len(hits) < LOOKUP_BATCH:
                    break
                body["search_after"] = hits[-1]["sort"]
        return found

    def close(self) -> None:
        self.client.close()
