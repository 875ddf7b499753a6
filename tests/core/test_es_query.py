"""Elasticsearch request bodies, built without a node: every mode's body, the layout read
from a mapping, the template's filling and the filters ``unfiltered`` strips.

The node tier (tests/elasticsearch) proves the node answers these bodies as intended; this
tier pins what is sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from auditor.backends.es_query import (
    DEFAULT_FIELDS,
    EXACT_SCRIPT,
    Layout,
    check_template,
    explain_body,
    read_layout,
    resolve_fields,
    search_bodies,
    strip_filters,
)
from auditor.errors import BackendError
from auditor.records import MODES

VECTOR = [0.1, 0.2, 0.3]
ID_SORT = [{"_score": "desc"}, {"chunk_id": "asc"}, {"doc_id": "asc"}]
NO_FETCH = {"_source": False, "stored_fields": "_none_", "track_total_hits": False}


def mapping(**extra: dict[str, Any]) -> dict[str, Any]:
    """An ``indices.get`` answer for one index as ``auditor index build`` maps it."""
    properties = {
        "chunk_id": {"type": "keyword"}, "doc_id": {"type": "keyword"},
        "position": {"type": "integer"},
        "title": {"type": "text", "analyzer": "standard"},
        "text": {"type": "text", "analyzer": "standard"},
        "embedding": {"type": "dense_vector", "dims": 3, "similarity": "cosine",
                      "index_options": {"type": "hnsw"}},
        "embedding_exact": {"type": "dense_vector", "dims": 3, "similarity": "cosine",
                            "index_options": {"type": "flat"}},
        **extra,
    }
    return {"ix": {"mappings": {"properties": properties,
                                "_meta": {"auditor": {"model_id": "hash"}}},
                   "settings": {"index": {"uuid": "u"}}}}


@pytest.fixture
def layout() -> Layout:
    return read_layout(mapping(), dict(DEFAULT_FIELDS))


def test_layout_reads_roles_vectors_and_build_record(layout: Layout) -> None:
    assert layout.lexical_fields == ["title", "text"]
    assert layout.vector is not None and layout.vector["dims"] == 3
    assert layout.exact_vector is not None and layout.position_field == "position"
    assert layout.meta == {"model_id": "hash"}
    bare = mapping()
    for name in ("title", "embedding", "embedding_exact", "position"):
        del bare["ix"]["mappings"]["properties"][name]
    plain = read_layout(bare, dict(DEFAULT_FIELDS))
    assert plain.lexical_fields == ["text"]
    assert (plain.vector, plain.exact_vector, plain.position_field) == (None, None, None)


def test_layout_refuses_a_field_of_the_wrong_type() -> None:
    with pytest.raises(BackendError, match=r"field 'chunk_id' \(chunk_id\) is a text field in "
                                           r"index ix, it must be keyword"):
        read_layout(mapping(chunk_id={"type": "text"}), dict(DEFAULT_FIELDS))
    with pytest.raises(BackendError, match="is a keyword, not a dense_vector"):
        read_layout(mapping(embedding={"type": "keyword"}), dict(DEFAULT_FIELDS))
    with pytest.raises(BackendError, match="unknown key"):
        resolve_fields({"passage": "body"})


def test_bm25_body(layout: Layout) -> None:
    (body,) = search_bodies(layout, "bm25", "cat", None, 7)
    assert body == {"query": {"multi_match": {"query": "cat", "fields": ["title", "text"],
                                              "type": "best_fields"}},
                    "size": 7, "sort": ID_SORT, **NO_FETCH}


def test_dense_body_sizes_its_candidates(layout: Layout) -> None:
    for depth, candidates in ((7, 100), (300, 600), (9000, 10_000)):
        (body,) = search_bodies(layout, "dense", "cat", VECTOR, depth)
        assert body["knn"] == {"field": "embedding", "query_vector": VECTOR, "k": depth,
                               "num_candidates": candidates}
        assert body["sort"] == ID_SORT and body["size"] == depth and "query" not in body


def test_hybrid_sends_bm25_then_dense(layout: Layout) -> None:
    lexical, dense = search_bodies(layout, "hybrid", "cat", VECTOR, 5)
    assert "multi_match" in lexical["query"] and "knn" not in lexical
    assert dense["knn"]["field"] == "embedding" and "query" not in dense


def test_exact_body_uses_the_flat_copy_or_a_script(layout: Layout) -> None:
    (flat,) = search_bodies(layout, "exact", "cat", VECTOR, 5, strategy="flat")
    assert flat["knn"]["field"] == "embedding_exact" and flat["sort"] == ID_SORT
    (script,) = search_bodies(layout, "exact", "cat", VECTOR, 5, strategy="script")
    scored = script["query"]["script_score"]
    assert scored["query"] == {"exists": {"field": "embedding"}}
    assert scored["script"] == {"source": EXACT_SCRIPT,
                                "params": {"query_vector": VECTOR, "field": "embedding"}}


def test_template_is_filled_sized_and_asks_for_the_ids(layout: Layout) -> None:
    template = ('{"query": {"bool": {"must": {"match": {"text": "{{query}}"}}, '
                '"filter": {"term": {"lang": "en"}}}}, "knn": {"field": "embedding", '
                '"query_vector": {{query_vector}}, "k": 3}}')
    assert check_template(template) == (template, False)
    query = 'say "hi"\n'
    (body,) = search_bodies(layout, "template", query, VECTOR, 4, template=template)
    assert body["query"]["bool"]["must"]["match"]["text"] == query  # JSON-escaped, read back
    assert body["knn"]["query_vector"] == VECTOR
    assert body["size"] == 4 and body["fields"] == ["chunk_id", "doc_id"]
    assert body["_source"] is False and "sort" not in body
    (bare,) = search_bodies(layout, "unfiltered", query, VECTOR, 4, template=template)
    assert "filter" not in bare["query"]["bool"]
    assert check_template('{"sort": ["_doc"], "query": {"match": {"t": "{{query}}"}}}')[1]


def test_bad_templates_say_how_to_write_them() -> None:
    with pytest.raises(BackendError, match="not JSON once filled"):
        check_template('{"query": {{query}}}')
    with pytest.raises(BackendError, match="must be a JSON object"):
        check_template('["{{query}}"]')


def test_every_mode_builds_json_bodies(layout: Layout) -> None:
    template = '{"query": {"match": {"text": "{{query}}"}}}'
    for mode in MODES:
        bodies = search_bodies(layout, mode, "cat", VECTOR, 10, template=template)
        assert len(bodies) == (2 if mode == "hybrid" else 1)
        assert all(json.loads(json.dumps(body)) == body for body in bodies)


def test_explain_body_filters_after_scoring(layout: Layout) -> None:
    body = explain_body(layout, "cat", "a1")
    assert body["explain"] is True and body["size"] == 1
    assert body["post_filter"] == {"term": {"chunk_id": "a1"}}
    assert body["query"] == search_bodies(layout, "bm25", "cat", None, 1)[0]["query"]


def test_strip_filters_removes_every_filter_and_says_where() -> None:
    body = {
        "query": {"bool": {"must": [{"match": {"text": "q"}}],
                           "filter": [{"term": {"doc_id": "A"}}],
                           "must_not": [{"term": {"doc_id": "Z"}}]}},
        "knn": [{"field": "embedding", "query_vector": [0.1], "k": 3, "num_candidates": 9,
                 "filter": {"term": {"doc_id": "A"}}}],
        "post_filter": {"term": {"lang": "en"}},
        "aggs": {"f": {"filter": {"bool": {"filter": [{"term": {"x": 1}}]}}}},
    }
    stripped, removed = strip_filters(body)
    assert removed == ["query.bool.filter", "knn[0].filter", "post_filter"]
    assert stripped["query"]["bool"] == {"must": [{"match": {"text": "q"}}],
                                         "must_not": [{"term": {"doc_id": "Z"}}]}
    assert "filter" not in stripped["knn"][0] and "post_filter" not in stripped
    assert stripped["aggs"] == body["aggs"]  # aggregations do not choose hits: untouched
    assert "filter" in body["query"]["bool"]  # the input is not changed
    # should-only bools keep their semantics: without a filter ES would require a should
    nested, removed = strip_filters({"query": {"bool": {"should": [{"match": {"t": "q"}}],
                                                        "filter": {"term": {"d": 1}}}},
                                     "retriever": {"standard": {"filter": {"term": {"d": 1}}}}})
    assert nested["query"]["bool"] == {"should": [{"match": {"t": "q"}}],
                                       "minimum_should_match": 0}
    assert removed == ["query.bool.filter", "retriever.standard.filter"]
    assert strip_filters({"query": {"constant_score": {"filter": {"term": {"d": 1}}}}}) == (
        {"query": {"constant_score": {"filter": {"term": {"d": 1}}}}}, [])
