"""Elasticsearch request bodies: pure functions of the index's layout, the mode and the query.

Why apart from the backend: the bodies are the experiment (what a replay asks the index), so
they are read and tested without a node (``tests/core/test_es_query.py``).

``bm25`` is a ``multi_match`` of type ``best_fields`` over title and text (each chunk scores
by its better field: the usual production default). ``dense`` is a top-level ``knn`` with
``k = depth`` and ``num_candidates = max(100, 2 * depth)`` capped at 10,000. Both sort by
``(_score desc, chunk_id asc)`` on the server, so ties at the depth cut-off fall as everywhere
in this project, and return the ids as sort values (no fetch phase). ``hybrid`` sends both
(fused client-side). ``template`` fills the production request body ``es_template``:
``{{query}}`` becomes the JSON-escaped query (write it inside quotes), ``{{query_vector}}``
the query embedding (write it bare); ``size`` is set to the depth. ``exact`` is a ``knn`` on
the ``flat``-indexed copy ``<vector>_exact`` or, without one, a ``script_score`` with
``cosineSimilarity``. ``unfiltered`` is the template with its filters stripped
(:func:`strip_filters`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from auditor.errors import BackendError
from auditor.records import Mode

ROLES = ("chunk_id", "doc_id", "title", "text", "vector", "position")
DEFAULT_FIELDS = {"chunk_id": "chunk_id", "doc_id": "doc_id", "title": "title", "text": "text",
                  "vector": "embedding", "position": "position"}
EXACT_SUFFIX = "_exact"  # <vector>_exact: the flat-indexed copy that exact mode searches
KEYWORD_TYPES = ("keyword", "constant_keyword")
TEXT_TYPES = ("text", "match_only_text")
NUMERIC_TYPES = ("long", "integer", "short", "byte", "unsigned_long", "double", "float")
MAX_CANDIDATES = 10_000
TEMPLATE_MODES = ("template", "unfiltered")
# painless: cosine + 1 keeps script scores non-negative, as script_score requires
EXACT_SCRIPT = "cosineSimilarity(params.query_vector, params.field) + 1.0"
ExactStrategy = Literal["flat", "script"]


def resolve_fields(overrides: dict[str, str]) -> dict[str, str]:
    """The user's (possibly partial) field map over the defaults."""
    unknown = sorted(set(overrides) - set(ROLES))
    if unknown:
        raise BackendError(f"es_fields has unknown key(s) {unknown}: use only {list(ROLES)}")
    return {**DEFAULT_FIELDS, **overrides}


def field_mapping(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path (object properties or multi-fields)."""
    head, _, rest = path.partition(".")
    entry = properties.get(head)
    if entry is None or not rest:
        return entry
    return field_mapping({**entry.get("properties", {}), **entry.get("fields", {})}, rest)


def field_problem(fields: dict[str, str], role: str, problem: str) -> str:
    return (f"field {fields[role]!r} ({role}) {problem}: map {role} to the right field "
            f'with es_fields, e.g. es_fields = {{{role} = "my_{role}"}}')


@dataclass(frozen=True)
class Layout:
    """What the index's mappings say the bodies must name: the fields of each role, the
    lexical fields (title when the index has one, then text), the vector fields and the
    auditor's build record (``_meta``), if any."""

    fields: dict[str, str]
    indices: dict[str, Any]  # name → {"mappings", "settings"}, by name
    meta: dict[str, Any]
    properties: dict[str, Any]
    lexical_fields: list[str]
    vector: dict[str, Any] | None
    exact_vector: dict[str, Any] | None
    position_field: str | None


def read_layout(indices: dict[str, Any], fields: dict[str, str]) -> Layout:
    """The layout of the indices an ``indices.get`` answered (mappings and settings); a
    field of the wrong type is a BackendError saying how to map it."""
    indices = dict(sorted(indices.items()))
    for name, index in indices.items():
        properties = index["mappings"].get("properties", {})
        for role, types in (("chunk_id", KEYWORD_TYPES), ("doc_id", KEYWORD_TYPES),
                            ("text", TEXT_TYPES)):
            _check_field(fields, name, properties, role, types, required=True)
    name, first = next(iter(indices.items()))
    properties = first["mappings"].get("properties", {})
    lexical = [fields["text"]]
    if _check_field(fields, name, properties, "title", TEXT_TYPES, required=False):
        lexical.insert(0, fields["title"])
    vector = field_mapping(properties, fields["vector"])
    if vector is not None and vector.get("type") != "dense_vector":
        kind = vector.get("type", "object")
        raise BackendError(field_problem(fields, "vector", f"is a {kind}, not a dense_vector"))
    exact = field_mapping(properties, fields["vector"] + EXACT_SUFFIX)
    position = field_mapping(properties, fields["position"])
    return Layout(
        fields=fields, indices=indices, properties=properties, lexical_fields=lexical,
        meta=first["mappings"].get("_meta", {}).get("auditor", {}), vector=vector,
        exact_vector=exact if (exact or {}).get("type") == "dense_vector" else None,
        position_field=(fields["position"] if (position or {}).get("type") in NUMERIC_TYPES
                        else None),
    )


def _check_field(fields: dict[str, str], index: str, properties: dict[str, Any], role: str,
                 types: tuple[str, ...], required: bool) -> bool:
    mapping = field_mapping(properties, fields[role])
    if mapping is None:
        if required:
            raise BackendError(field_problem(fields, role, f"is not in index {index}"))
        return False
    kind = mapping.get("type", "object")
    if kind not in types:
        raise BackendError(field_problem(
            fields, role, f"is a {kind} field in index {index}, it must be {' or '.join(types)}"))
    return True


def check_template(template: str | None) -> tuple[str | None, bool]:
    """The template if it is a JSON object once filled, and whether it sorts by itself."""
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


# bodies ------------------------------------------------------------------------------------
def id_sort(fields: dict[str, str]) -> list[dict[str, str]]:
    # chunk ids are unique, so doc_id never changes the order; it is there to be returned
    return [{"_score": "desc"}, {fields["chunk_id"]: "asc"}, {fields["doc_id"]: "asc"}]


def common(fields: dict[str, str], depth: int) -> dict[str, Any]:
    """Size and sort of every built-in mode. The ids come back as sort values (doc values,
    read in the query phase): with no fetch phase at all, a search costs a sixth of one
    that returns fields or _source."""
    return {"size": depth, "_source": False, "stored_fields": "_none_",
            "track_total_hits": False, "sort": id_sort(fields)}


def bm25_query(query: str, lexical_fields: list[str]) -> dict[str, Any]:
    """The lexical query of ``bm25`` mode (also what ``_explain`` explains)."""
    return {"multi_match": {"query": query, "fields": lexical_fields, "type": "best_fields"}}


def knn(field: str, vector: list[float], depth: int) -> dict[str, Any]:
    return {"field": field, "query_vector": vector, "k": depth,
            "num_candidates": min(MAX_CANDIDATES, max(100, 2 * depth))}


def exact(fields: dict[str, str], vector: list[float], depth: int,
          strategy: ExactStrategy) -> dict[str, Any]:
    """Brute-force kNN: on the flat copy, or a script scoring every chunk with a vector."""
    if strategy == "flat":
        return {"knn": knn(fields["vector"] + EXACT_SUFFIX, vector, depth)}
    script = {"source": EXACT_SCRIPT, "params": {"query_vector": vector, "field": fields["vector"]}}
    return {"query": {"script_score": {
        "query": {"exists": {"field": fields["vector"]}}, "script": script}}}


def template_body(template: str, fields: dict[str, str], query: str,
                  vector: list[float] | None, depth: int) -> dict[str, Any]:
    text = template.replace("{{query}}", json.dumps(query)[1:-1])
    if vector is not None:
        text = text.replace("{{query_vector}}", json.dumps(vector))
    body: dict[str, Any] = json.loads(text)
    body["size"] = depth
    body["fields"] = [*body.get("fields", []), fields["chunk_id"], fields["doc_id"]]
    body.setdefault("_source", False)
    return body


def search_bodies(layout: Layout, mode: Mode, query: str, vector: list[float] | None,
                  depth: int, *, template: str | None = None,
                  strategy: ExactStrategy = "flat") -> list[dict[str, Any]]:
    """The bodies one query sends in ``mode``: one, or two for ``hybrid`` (bm25, then dense).
    ``vector`` is the query's embedding where the mode uses one."""
    fields, bodies = layout.fields, []
    if mode in ("bm25", "hybrid"):
        bodies.append({"query": bm25_query(query, layout.lexical_fields), **common(fields, depth)})
    if mode in ("dense", "hybrid"):
        bodies.append({"knn": knn(fields["vector"], _vector(vector, mode), depth),
                       **common(fields, depth)})
    if mode == "exact":
        bodies.append({**exact(fields, _vector(vector, mode), depth, strategy),
                       **common(fields, depth)})
    if mode in TEMPLATE_MODES:
        if template is None:
            raise BackendError(f"{mode} mode needs es_template")
        body = template_body(template, fields, query, vector, depth)
        bodies.append(strip_filters(body)[0] if mode == "unfiltered" else body)
    return bodies


def _vector(vector: list[float] | None, mode: str) -> list[float]:
    if vector is None:
        raise BackendError(f"{mode} search needs the query's embedding")
    return vector


def explain_body(layout: Layout, query: str, chunk_id: str) -> dict[str, Any]:
    """The bm25 query with a ``post_filter`` on one chunk (a post filter changes neither
    scores nor explanations) and ``explain: true``."""
    return {"query": bm25_query(query, layout.lexical_fields), "size": 1, "explain": True,
            "_source": False, "post_filter": {"term": {layout.fields["chunk_id"]: chunk_id}}}


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
