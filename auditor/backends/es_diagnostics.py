"""What an Elasticsearch index says about itself, for diagnosis and provenance: why the bm25
query scores a chunk as it does (``_explain``), how the index analyzes a text, and the
fingerprint a run is stored with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.backends.es_connection import (
    Connection,
    canonical_sha256,
    error_reason,
    max_seq_nos,
)
from auditor.backends.es_query import Layout, bm25_query, explain_body, field_mapping
from auditor.backends.protocol import Fingerprint
from auditor.errors import BackendError

ANALYZE_BATCH = 200  # artificial documents per _mtermvectors request


def flatten_explanation(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The term weights of an explanation tree: ``weight(field:term in doc)`` leaves."""
    found = []
    description = str(node.get("description", ""))
    if description.startswith("weight(") and ":" in description:
        field, _, rest = description[len("weight("):].partition(":")
        term = rest.split(" in ", 1)[0]
        found.append({"field": field, "term": term, "score": float(node.get("value", 0.0))})
        return found
    for child in node.get("details", []):
        found.extend(flatten_explanation(child))
    return found


def explain(conn: Connection, layout: Layout, query: str, chunk_id: str) -> dict[str, Any]:
    """Why the bm25 query gives this chunk its score: ``_explain`` of that query."""
    found = conn.search({"query": {"term": {layout.fields["chunk_id"]: chunk_id}},
                         "size": 1, "_source": False}, "finding the chunk")["hits"]["hits"]
    if not found:
        raise BackendError(f"chunk {chunk_id!r} is not in index {conn.index}: "
                           "check the id against the index")
    target = found[0]
    body = conn.call(lambda: conn.client.explain(
        index=target["_index"], id=target["_id"],
        query=bm25_query(query, layout.lexical_fields)), "explaining a score").body
    explanation = body.get("explanation", {})
    return {"chunk_id": chunk_id, "matched": bool(body.get("matched")),
            "score": float(explanation.get("value", 0.0)), "explanation": explanation}


def explain_many(conn: Connection, layout: Layout, pairs: Sequence[tuple[str, str]],
                 batch_size: int) -> list[dict[str, Any]]:
    """``_explain`` of the bm25 query for many ``(query, chunk_id)`` pairs in ``_msearch``
    batches (see :func:`es_query.explain_body`)."""
    bodies = [explain_body(layout, query, chunk) for query, chunk in pairs]
    explained = []
    for start in range(0, len(bodies), batch_size):
        batch = pairs[start:start + batch_size]
        answers = conn.msearch(bodies[start:start + batch_size])
        for (_, chunk_id), answer in zip(batch, answers, strict=True):
            if "error" in answer:
                explained.append({"chunk_id": chunk_id, "matched": False, "score": 0.0,
                                  "explanation": None,
                                  "error": conn.scrub(error_reason(answer["error"]))})
                continue
            hits = answer["hits"]["hits"]
            explanation = hits[0].get("_explanation") if hits else None
            explained.append({
                "chunk_id": chunk_id, "matched": bool(hits),
                "score": float(hits[0]["_score"]) if hits else 0.0,
                "terms": flatten_explanation(explanation) if explanation else [],
                "explanation": explanation,
            })
    return explained


def analyze(conn: Connection, layout: Layout, texts: Sequence[str],
            field: str = "text") -> list[list[str]]:
    """The tokens the index makes of each text in a field (a role name or a field name),
    in order, via ``_mtermvectors`` of artificial documents (``ANALYZE_BATCH`` a request).
    The field's own analyzer runs on each text; tokens come back by position. Should the
    node refuse term vectors for the field, each text goes to ``_analyze`` instead."""
    name = layout.fields.get(field, field)
    index = next(iter(layout.indices))
    tokens: list[list[str]] = []
    for start in range(0, len(texts), ANALYZE_BATCH):
        batch = list(texts[start:start + ANALYZE_BATCH])
        docs = [{"_index": index, "doc": {name: text}, "fields": [name], "positions": True,
                 "offsets": True, "term_statistics": False, "field_statistics": False}
                for text in batch]
        body = conn.call(lambda d=docs: conn.client.mtermvectors(docs=d), "analyzing text").body
        for text, doc in zip(batch, body["docs"], strict=True):
            if "error" in doc:
                tokens.append(analyze_one(conn, index, text, name))
                continue
            terms = doc.get("term_vectors", {}).get(name, {}).get("terms", {})
            placed = sorted((token.get("position", 0), token.get("start_offset", 0), term)
                            for term, entry in terms.items() for token in entry["tokens"])
            tokens.append([term for *_, term in placed])
    return tokens


def analyze_one(conn: Connection, index: str, text: str, name: str) -> list[str]:
    """One text through ``_analyze`` with the field's analyzer: the fallback, and the oracle."""
    body = conn.call(lambda: conn.client.indices.analyze(index=index, field=name, text=text),
                     "analyzing text").body
    return [token["token"] for token in body.get("tokens", [])]


def fingerprint(conn: Connection, layout: Layout, model_id: str,
                template: str | None) -> Fingerprint:
    """Cluster version, index UUIDs, counts, mapping hash, model and ranking parameters.

    ``content_hash`` is the corpus hash recorded at build time (the embedded index's
    formula) while no document changed since; otherwise a hash of the index state
    (UUIDs, sequence numbers, mapping), which any write changes. ``model_id`` is the
    encoder's, used when the build recorded none.
    """
    client, index, meta = conn.client, conn.index, layout.meta
    chunk_count = int(conn.call(lambda: client.count(index=index), "counting chunks")
                      .body["count"])
    cardinality = {"field": layout.fields["doc_id"], "precision_threshold": 40000}
    docs = conn.search({"size": 0, "aggs": {"docs": {"cardinality": cardinality}}},
                       "counting documents")["aggregations"]["docs"]["value"]
    max_seq_no = max_seq_nos(conn, index)
    uuids = [entry["settings"]["index"]["uuid"] for entry in layout.indices.values()]
    mapping_hash = canonical_sha256({n: i["mappings"] for n, i in layout.indices.items()})
    unchanged = bool(len(layout.indices) == 1 and meta.get("content_hash")
                     and meta.get("max_seq_no") == sum(max_seq_no.values())
                     and meta.get("chunk_count") == chunk_count)
    content_hash = meta["content_hash"] if unchanged else canonical_sha256(
        {"uuids": uuids, "max_seq_no": max_seq_no, "chunks": chunk_count,
         "mapping": mapping_hash})
    settings = next(iter(layout.indices.values()))["settings"]["index"]
    vector = layout.vector or {}
    return Fingerprint(
        backend="elasticsearch",
        document_count=int(docs),
        chunk_count=chunk_count,
        content_hash=content_hash,
        model_id=meta.get("model_id") or model_id,
        params={
            "es_version": conn.node.version,
            "index": index,
            "index_uuids": uuids,
            "mapping_sha256": mapping_hash,
            "content_hash_kind": "corpus" if unchanged else "index-state",
            "max_seq_no": max_seq_no,
            "fields": dict(layout.fields),
            "analyzers": {f: (field_mapping(layout.properties, f) or {}).get(
                "analyzer", "standard") for f in layout.lexical_fields},
            "similarity": settings.get("similarity", {}).get(
                "default", {"type": "BM25", "k1": 1.2, "b": 0.75}),
            "bm25": {"query": "multi_match", "type": "best_fields",
                     "fields": layout.lexical_fields},
            "knn": {"num_candidates": "max(100, 2*depth) capped at 10000",
                    "index_options": vector.get("index_options"),
                    "similarity": vector.get("similarity"),
                    "exact": ("flat copy" if layout.exact_vector is not None
                              else "script_score or unavailable")},
            "hybrid": {"fusion": "rrf", "k": 60},
            "template_sha256": canonical_sha256(template) if template else None,
            "node_modules": list(conn.node.modules),
        },
    )
