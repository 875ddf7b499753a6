"""The Elasticsearch backend against a real node (``es_url``: see tests/conftest.py).

Corpora are small enough to check by hand; most use the fast hash encoder, a few the real
MiniLM model (marker ``model``). Nothing here mocks Elasticsearch.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from auditor.backends import Backend, BackendError, es_diagnostics
from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions
from auditor.config import AuditSettings
from auditor.embed import load_encoder
from auditor.records import Chunk

pytestmark = pytest.mark.elasticsearch

DOCS = [  # chunk_id, doc_id, title, text
    ("a1", "A", "Cats", "a cat purrs on the warm windowsill"),
    ("a2", "A", "Cats", "kittens chase a ball of yarn"),
    ("b1", "B", "Dogs", "the dog barks at the mail carrier"),
    ("c1", "C", "Fish", "goldfish swim slowly in a glass bowl"),
    ("d1", "D", "Birds", "a parrot can imitate human speech"),
]
SECRET = "sekret-api-key-do-not-leak-42"


def chunks(rows: list[tuple[str, str, str, str]] = DOCS) -> list[Chunk]:
    return [Chunk(chunk_id=c, doc_id=d, title=t, text=x, position=i)
            for i, (c, d, t, x) in enumerate(rows)]


def options(**given: Any) -> ElasticsearchOptions:
    """The backend's options as the auditor builds them: from validated settings."""
    return ElasticsearchOptions.from_settings(AuditSettings(**given))


def settings(url: str, index: str, **extra: Any) -> ElasticsearchOptions:
    return options(es_url=url, es_index=index, es_max_retries=1, es_timeout_s=10, **extra)


def ids(backend: ElasticsearchBackend, query: str, mode: str, depth: int = 10) -> list[str]:
    (result,) = backend.search_many([query], mode, depth)  # type: ignore[arg-type]
    assert result.error is None, result.error
    return [hit.chunk_id for hit in result.hits]


@pytest.fixture(scope="module")
def client(es_url: str) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(es_url)
    yield es
    # by name: nodes refuse wildcard deletes unless action.destructive_requires_name is off
    for name in es.indices.get(index="auditor-test-*", expand_wildcards="all"):
        es.options(ignore_status=404).indices.delete(index=name)
    es.close()


@pytest.fixture
def index_name(client: Any) -> Iterator[str]:
    name = f"auditor-test-{uuid.uuid4().hex[:8]}"
    yield name
    client.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture(scope="module")
def tiny(es_url: str, client: Any) -> ElasticsearchBackend:
    """The five-chunk corpus, embedded with the hash encoder (shared: tests only read it)."""
    name = f"auditor-test-tiny-{uuid.uuid4().hex[:6]}"
    return ElasticsearchBackend.build(settings(es_url, name), chunks(), load_encoder("hash"))


# building and bm25 ---------------------------------------------------------------------
def test_implements_the_protocol(tiny: ElasticsearchBackend) -> None:
    assert isinstance(tiny, Backend)


def test_build_writes_the_explicit_mapping(tiny: ElasticsearchBackend, client: Any) -> None:
    mapping = client.indices.get_mapping(index=tiny.index)[tiny.index]["mappings"]
    props = mapping["properties"]
    assert props["chunk_id"]["type"] == props["doc_id"]["type"] == "keyword"
    assert props["title"] == props["text"] == {"type": "text", "analyzer": "standard"}
    assert props["position"]["type"] == "integer"
    assert props["embedding"]["dims"] == 384 and props["embedding"]["similarity"] == "cosine"
    assert props["embedding"]["index_options"]["type"] == "hnsw"
    assert props["embedding_exact"]["index_options"] == {"type": "flat"}
    assert mapping["_meta"]["auditor"]["model_id"] == "hash-bow-384"
    assert client.get(index=tiny.index, id="b1")["_source"]["doc_id"] == "B"  # _id = chunk_id


def test_bm25_golden(tiny: ElasticsearchBackend) -> None:
    assert ids(tiny, "barking dog", "bm25") == ["b1"]
    assert ids(tiny, "parrot speech", "bm25") == ["d1"]
    assert ids(tiny, "goldfish", "bm25") == ["c1"]
    assert ids(tiny, "Kittens YARN", "bm25") == ["a2"]  # standard analyzer lowercases
    assert ids(tiny, "Cats", "bm25")[:2] == ["a1", "a2"]  # title match: tie, id order


def test_empty_results_and_empty_batches(tiny: ElasticsearchBackend) -> None:
    (result,) = tiny.search_many(["zebra"], "bm25", 10)
    assert result.hits == [] and result.error is None and result.took_ms is not None
    assert tiny.search_many([], "bm25", 10) == []


def test_batches_keep_query_order(es_url: str, tiny: ElasticsearchBackend) -> None:
    small = ElasticsearchBackend(settings(es_url, tiny.index, batch_size=2, es_concurrency=2))
    queries = ["goldfish", "parrot", "barks", "yarn", "windowsill", "zebra", "bowl"]
    results = small.search_many(queries, "bm25", 3)
    firsts = [r.hits[0].chunk_id if r.hits else None for r in results]
    assert firsts == ["c1", "d1", "b1", "a2", "a1", None, "c1"]
    assert all(r.took_ms is not None and r.took_ms >= 0 for r in results)


def test_depth_limits(tiny: ElasticsearchBackend) -> None:
    assert len(ids(tiny, "a the cat dog fish", "bm25", depth=2)) == 2
    assert len(ids(tiny, "cat", "dense", depth=1)) == 1
    assert len(ids(tiny, "cat", "dense", depth=50)) == 5  # the whole index, no more
    for bad in (0, 10_001):
        with pytest.raises(BackendError, match="depth"):
            tiny.search_many(["cat"], "bm25", bad)


def test_ties_break_by_score_then_chunk_id(es_url: str, index_name: str) -> None:
    same = "identical words in every chunk"
    rows = [(cid, "X", "", same) for cid in ("m", "c", "x", "a", "k")]
    backend = ElasticsearchBackend.build(settings(es_url, index_name), chunks(rows), None)
    result = backend.search_many(["identical words"], "bm25", 3)[0]
    assert [h.chunk_id for h in result.hits] == ["a", "c", "k"]  # the cut-off obeys it too
    assert [h.rank for h in result.hits] == [1, 2, 3]
    assert len({h.score for h in result.hits}) == 1


# dense, hybrid, template -----------------------------------------------------------------
def test_dense_and_hybrid(tiny: ElasticsearchBackend) -> None:
    dense = tiny.search_many(["dog barks"], "dense", 10)[0]
    assert dense.hits[0].chunk_id == "b1" and len(dense.hits) == 5
    assert -1.0 <= dense.hits[-1].score <= dense.hits[0].score <= 1.0 + 1e-6  # cosine
    assert ids(tiny, "dog barks", "knn")[0] == "b1"  # the Elasticsearch word for dense
    hybrid = tiny.search_many(["dog barks"], "hybrid", 3)[0]
    assert hybrid.hits[0].chunk_id == "b1" and len(hybrid.hits) == 3
    assert hybrid.hits[0].score == pytest.approx(2 / 61)  # rank 1 in both lists


def test_template_fills_query_and_vector(es_url: str, tiny: ElasticsearchBackend) -> None:
    lexical = '{"query": {"match": {"text": {"query": "{{query}}", "operator": "and"}}}}'
    backend = ElasticsearchBackend(settings(es_url, tiny.index, es_template=lexical))
    assert ids(backend, 'the "dog" barks', "template") == ["b1"]  # quotes are escaped
    assert ids(backend, "dog parrot", "template") == []  # operator and: production semantics
    knn = ('{"knn": {"field": "embedding", "query_vector": {{query_vector}}, "k": 2, '
           '"num_candidates": 10}}')
    backend = ElasticsearchBackend(settings(es_url, tiny.index, es_template=knn),
                                   load_encoder("hash"))
    assert ids(backend, "goldfish swim", "template")[0] == "c1"
    with pytest.raises(BackendError, match="es_template is not JSON"):
        ElasticsearchBackend(settings(es_url, tiny.index, es_template='{"query": {{query}}'))


def test_a_failing_query_does_not_fail_its_batch(es_url: str, tiny: ElasticsearchBackend) -> None:
    template = '{"query": {"query_string": {"query": "{{query}}", "fields": ["text"]}}}'
    backend = ElasticsearchBackend(settings(es_url, tiny.index, es_template=template))
    results = backend.search_many(["goldfish", "bad (( syntax", "parrot"], "template", 5)
    assert [h.chunk_id for h in results[0].hits] == ["c1"]
    assert results[1].hits == [] and "Failed to parse query" in (results[1].error or "")
    assert [h.chunk_id for h in results[2].hits] == ["d1"]


def test_a_request_the_node_cannot_parse_fails_per_query(es_url: str,
                                                         tiny: ElasticsearchBackend) -> None:
    backend = ElasticsearchBackend(settings(es_url, tiny.index,
                                            es_template='{"query": {"no_such_query": {}}}'))
    results = backend.search_many(["cat", "dog"], "template", 5)
    assert all(r.hits == [] and "no_such_query" in (r.error or "") for r in results)


def test_modes_that_need_what_is_missing(es_url: str, tiny: ElasticsearchBackend) -> None:
    no_encoder = ElasticsearchBackend(settings(es_url, tiny.index))
    with pytest.raises(BackendError, match="needs an encoder"):
        no_encoder.search_many(["cat"], "dense", 5)
    with pytest.raises(BackendError, match="needs es_template"):
        no_encoder.search_many(["cat"], "template", 5)


@pytest.mark.model
def test_minilm_finds_meaning_not_words(es_url: str, index_name: str) -> None:
    backend = ElasticsearchBackend.build(settings(es_url, index_name), chunks(),
                                         load_encoder("minilm"))
    assert ids(backend, "feline pet resting in the sun", "dense")[0] == "a1"
    assert ids(backend, "aquarium", "dense")[0] == "c1"
    assert ids(backend, "which bird talks like people", "hybrid")[0] == "d1"
    assert ids(backend, "aquarium", "bm25") == []  # no shared word: lexical finds nothing
    with pytest.raises(BackendError, match="was embedded with"):
        ElasticsearchBackend(settings(es_url, index_name), load_encoder("hash")).search_many(
            ["cat"], "dense", 3)


# lookups ---------------------------------------------------------------------------------
def test_fetch_and_contains_with_unknown_ids(tiny: ElasticsearchBackend) -> None:
    found = tiny.fetch(["b1", "nope", "c1", "b1"])
    assert found == {
        "b1": {"doc_id": "B", "title": "Dogs", "text": "the dog barks at the mail carrier"},
        "c1": {"doc_id": "C", "title": "Fish", "text": "goldfish swim slowly in a glass bowl"},
    }
    assert tiny.fetch([]) == {}
    assert tiny.contains(["a2", "zz", "a1", "zz"], "chunk") == [True, False, True, False]
    assert tiny.contains(["A", "a1", "D", "Q"], "doc") == [True, False, True, False]
    assert tiny.contains([], "doc") == []


def test_iter_ids_is_complete_across_pages(es_url: str, index_name: str) -> None:
    rows = [(f"chunk-{i:05d}", f"doc-{i // 3}", "", f"text number {i}") for i in range(2500)]
    backend = ElasticsearchBackend.build(settings(es_url, index_name), chunks(rows), None)
    listed = list(backend.iter_ids())
    assert listed == sorted((c, d) for c, d, _, _ in rows)  # all 2,500, by chunk id, once
    fingerprint = backend.fingerprint()
    assert (fingerprint.chunk_count, fingerprint.document_count) == (2500, 834)


def test_fingerprint_is_stable_and_sees_writes(tiny: ElasticsearchBackend, es_url: str,
                                               index_name: str, client: Any) -> None:
    backend = ElasticsearchBackend.build(settings(es_url, index_name), chunks(),
                                         load_encoder("hash"))
    first, second = backend.fingerprint(), backend.fingerprint()
    assert first == second
    assert (first.chunk_count, first.document_count) == (5, 4)
    assert first.model_id == "hash-bow-384" and first.params["content_hash_kind"] == "corpus"
    assert first.params["es_version"].startswith(("8.", "9."))
    from auditor.backends.embedded import content_hash

    assert first.content_hash == content_hash(chunks())  # same formula as the embedded index
    client.index(index=index_name, id="e1", refresh=True, document={
        "chunk_id": "e1", "doc_id": "E", "title": "Eels", "text": "an eel in the reef"})
    third = backend.fingerprint()
    assert (third.chunk_count, third.document_count) == (6, 5)
    assert third.content_hash != first.content_hash
    assert third.params["content_hash_kind"] == "index-state"
    assert third.params["mapping_sha256"] == first.params["mapping_sha256"]


def test_rebuild_replaces_only_auditor_indices(es_url: str, index_name: str,
                                               client: Any) -> None:
    config = settings(es_url, index_name)
    ElasticsearchBackend.build(config, chunks(), None)
    rebuilt = ElasticsearchBackend.build(config, chunks(DOCS[:2]), None)
    assert rebuilt.fingerprint().chunk_count == 2
    client.indices.delete(index=index_name)
    client.indices.create(index=index_name, mappings={"properties": {"x": {"type": "text"}}})
    with pytest.raises(BackendError, match="not built by the auditor"):
        ElasticsearchBackend.build(config, chunks(), None)
    with pytest.raises(BackendError, match="duplicate chunk id 'a1'"):
        ElasticsearchBackend.build(settings(es_url, f"{index_name}-dup"),
                                   chunks([DOCS[0], DOCS[0]]), None)
    assert not client.indices.exists(index=f"{index_name}-dup")  # no half-built index left


# evidence primitives -------------------------------------------------------------------
def test_explain_and_analyze(tiny: ElasticsearchBackend) -> None:
    explained = tiny.explain("barking dog", "b1")
    assert explained["matched"] and explained["score"] > 0
    assert explained["score"] == pytest.approx(tiny.search_many(["barking dog"], "bm25", 1)[0]
                                               .hits[0].score, rel=1e-5)
    assert "dog" in str(explained["explanation"])
    assert not tiny.explain("barking dog", "c1")["matched"]
    with pytest.raises(BackendError, match="'nope' is not in index"):
        tiny.explain("dog", "nope")
    assert tiny.analyze(["The Dog's BARKING!"]) == [["the", "dog's", "barking"]]
    assert tiny.analyze(["Hello World"], field="title") == [["hello", "world"]]


# attaching to an index the auditor did not build ----------------------------------------
def test_attach_with_a_field_map(es_url: str, index_name: str, client: Any) -> None:
    client.indices.create(index=index_name, mappings={"properties": {
        "passage_id": {"type": "keyword"}, "meta": {"properties": {"doc": {"type": "keyword"}}},
        "body": {"type": "text"}}})
    client.index(index=index_name, id="1", document={
        "passage_id": "p1", "meta": {"doc": "D9"}, "body": "tides follow the moon"})
    client.index(index=index_name, id="2", refresh=True, document={
        "passage_id": "p2", "meta": {"doc": "D9"}, "body": "the sun rises in the east"})
    fields = {"chunk_id": "passage_id", "doc_id": "meta.doc", "text": "body"}
    backend = ElasticsearchBackend(settings(es_url, index_name, es_fields=fields))
    (result,) = backend.search_many(["moon tides"], "bm25", 5)
    assert [(h.chunk_id, h.doc_id) for h in result.hits] == [("p1", "D9")]
    assert backend.fetch(["p2"]) == {"p2": {"doc_id": "D9", "title": "",
                                            "text": "the sun rises in the east"}}
    assert list(backend.iter_ids()) == [("p1", "D9"), ("p2", "D9")]
    assert backend.fingerprint().params["content_hash_kind"] == "index-state"
    with pytest.raises(BackendError, match=r"'embedding' \(vector\) is not in index"):
        backend.search_many(["moon"], "dense", 5)
    with pytest.raises(BackendError, match=r"field 'doc_id' \(doc_id\) is not in index"):
        ElasticsearchBackend(settings(es_url, index_name, es_fields={"chunk_id": "passage_id"}))
    with pytest.raises(BackendError, match=r"'body' \(chunk_id\) is a text field"):
        ElasticsearchBackend(settings(es_url, index_name, es_fields={**fields, "chunk_id": "body"}))
    with pytest.raises(BackendError, match="unknown key"):
        ElasticsearchBackend(settings(es_url, index_name, es_fields={"passage": "body"}))


# failures --------------------------------------------------------------------------------
def test_missing_index(es_url: str) -> None:
    with pytest.raises(BackendError) as caught:
        ElasticsearchBackend(settings(es_url, "auditor-test-no-such-index"))
    message = str(caught.value)
    assert "index auditor-test-no-such-index does not exist" in message
    assert "auditor index build --backend elasticsearch" in message


def test_unreachable_node_says_what_to_do() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(BackendError) as caught:
        ElasticsearchBackend(options(es_url=url, es_max_retries=1, es_timeout_s=2))
    assert str(caught.value) == (
        f"Elasticsearch at {url} is not answering: start it with `scripts/elasticsearch.sh "
        "start` or `docker compose up -d elasticsearch`, or set AUDITOR_ES_URL")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_node_that_never_answers_times_out() -> None:
    with socket.socket() as sock:  # accepts connections (backlog), never replies
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = options(es_url=url, es_max_retries=1, es_timeout_s=0.5)
        with pytest.raises(BackendError, match=r"did not answer the node check within 0.5s \(1 "
                                               r"retries\): raise es_timeout_s"):
            ElasticsearchBackend(config)


def test_credentials_never_leak(es_url: str, tiny: ElasticsearchBackend) -> None:
    """The test node has security off: it ignores credentials, or rejects them; either way
    they must appear in no message and no fingerprint."""
    with_key = settings(es_url, tiny.index, es_api_key=SECRET)
    with_password = settings(es_url, tiny.index, es_username="auditor", es_password=SECRET)
    for config in (with_key, with_password):
        try:
            backend = ElasticsearchBackend(config)
        except BackendError as exc:
            assert SECRET not in str(exc) and "credentials" in str(exc)
            continue
        assert SECRET not in repr(backend.fingerprint().as_dict())
        assert SECRET not in repr(backend.search_many(["dog"], "bm25", 3))
        missing = settings(es_url, "auditor-test-absent", es_api_key=SECRET)
        with pytest.raises(BackendError) as caught:
            ElasticsearchBackend(missing)
        assert SECRET not in str(caught.value)
    in_url = es_url.replace("http://", f"http://auditor:{SECRET}@")
    with pytest.raises(BackendError) as caught:
        ElasticsearchBackend(settings(in_url, "auditor-test-absent"))
    assert SECRET not in str(caught.value) and "does not exist" in str(caught.value)


# diagnosis ablations and primitives ---------------------------------------------------
def test_unfiltered_runs_the_template_without_its_filters(es_url: str,
                                                          tiny: ElasticsearchBackend) -> None:
    template = ('{"query": {"bool": {"must": {"match": {"text": "{{query}}"}}, '
                '"filter": {"term": {"doc_id": "A"}}}}, "post_filter": {"term": {"doc_id": "A"}}}')
    backend = ElasticsearchBackend(settings(es_url, tiny.index, es_template=template))
    assert ids(backend, "cat dog", "template") == ["a1"]
    assert ids(backend, "cat dog", "unfiltered") == ["a1", "b1"]
    knn = ('{"knn": {"field": "embedding", "query_vector": {{query_vector}}, "k": 5, '
           '"num_candidates": 10, "filter": {"term": {"doc_id": "C"}}}}')
    backend = ElasticsearchBackend(settings(es_url, tiny.index, es_template=knn),
                                   load_encoder("hash"))
    assert ids(backend, "dog barks", "template") == ["c1"]
    assert ids(backend, "dog barks", "unfiltered")[0] == "b1"


def test_exact_knn_uses_the_flat_copy(tiny: ElasticsearchBackend) -> None:
    (exact,), (dense,) = (tiny.search_many(["dog barks"], m, 5) for m in ("exact", "dense"))
    assert [h.chunk_id for h in exact.hits] == [h.chunk_id for h in dense.hits]
    assert exact.hits[0].score == pytest.approx(dense.hits[0].score, abs=1e-5)  # cosine too
    assert tiny.fingerprint().params["knn"]["exact"] == "flat copy"


def test_exact_knn_without_a_flat_copy_or_painless(es_url: str, index_name: str,
                                                   client: Any) -> None:
    """The test node has no painless: without the flat copy, exact kNN is refused with a
    message that says ann_loss cannot be checked and how to fix it."""
    client.indices.create(index=index_name, mappings={"properties": {
        "chunk_id": {"type": "keyword"}, "doc_id": {"type": "keyword"},
        "text": {"type": "text"},
        "embedding": {"type": "dense_vector", "dims": 384, "similarity": "cosine"}}})
    encoder = load_encoder("hash")
    client.index(index=index_name, id="x", refresh=True, document={
        "chunk_id": "x", "doc_id": "X", "text": "cat", "embedding": encoder.encode(["cat"])[0]
        .tolist()})
    backend = ElasticsearchBackend(settings(es_url, index_name), encoder)
    assert ids(backend, "cat", "dense") == ["x"]
    if backend.node.has("lang-painless"):  # a full node: the script_score fallback answers
        assert ids(backend, "cat", "exact") == ["x"]
        return
    with pytest.raises(BackendError, match="ann_loss cannot be checked"):
        backend.search_many(["cat"], "exact", 3)


def test_analyze_in_batches_equals_analyze_one_by_one(es_url: str,
                                                      tiny: ElasticsearchBackend) -> None:
    """_mtermvectors (batched) against _analyze (one text a call) as the oracle."""
    texts = ["The Dog's BARKING! dog", "", "\U0001f600 naïve café, e-mail x@y.org", "a b a",
             "Kittens chase a ball of yarn " * 20]
    small = ElasticsearchBackend(settings(es_url, tiny.index))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("auditor.backends.es_diagnostics.ANALYZE_BATCH", 2)
        batched = small.analyze(texts)
    assert batched == [es_diagnostics.analyze_one(small.conn, tiny.index, text, "text")
                       for text in texts]
    assert batched[0] == ["the", "dog's", "barking", "dog"] and batched[1] == []


def test_doc_chunks_and_explain_many(es_url: str, index_name: str,
                                     tiny: ElasticsearchBackend) -> None:
    rows = [(f"c{i:04d}", f"doc-{i % 3}", "", f"text {i}") for i in range(2100)]
    rows = list(reversed(rows))  # positions run against chunk id order
    backend = ElasticsearchBackend.build(settings(es_url, index_name), chunks(rows), None)
    found = backend.doc_chunks(["doc-1", "doc-9", "doc-0"])
    assert set(found) == {"doc-0", "doc-1"} and len(found["doc-1"]) == 700  # across pages
    assert found["doc-0"][:3] == ["c2097", "c2094", "c2091"]  # by position, not by id
    pairs = [("dog barks", "b1"), ("dog barks", "c1"), ("goldfish bowl", "c1")]
    explained = tiny.explain_many(pairs)
    assert [e["matched"] for e in explained] == [True, False, True]
    for (query, chunk), one in zip(pairs, explained, strict=True):
        assert one["chunk_id"] == chunk
        assert one["score"] == pytest.approx(tiny.explain(query, chunk)["score"], rel=1e-6)
    assert {t["term"] for t in explained[0]["terms"]} >= {"dog", "barks"}
