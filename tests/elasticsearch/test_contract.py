"""One contract, two backends: the embedded index and a real Elasticsearch node answer the
same questions the same way on the same small corpus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.backends import Backend
from auditor.config import AuditSettings
from auditor.embed import load_encoder
from auditor.records import Chunk

CORPUS = [  # chunk_id, doc_id, title, text
    ("p1", "planets", "Planets", "Jupiter is the largest planet of the solar system"),
    ("p2", "planets", "Planets", "Saturn has spectacular rings of ice"),
    ("v1", "volcanoes", "Volcanoes", "lava erupts from the crater of a volcano"),
    ("t1", "tea", "Tea", "green tea is brewed from steamed leaves"),
    ("t2", "tea", "Tea", "oolong tea is partially oxidised"),
    ("dup-b", "dupes", "Dupes", "identical twin sentence for tie breaking"),
    ("dup-a", "dupes", "Dupes", "identical twin sentence for tie breaking"),
]
UNAMBIGUOUS = {  # query → the one chunk that must come first in bm25 and in dense
    "largest planet Jupiter": "p1",
    "Saturn rings": "p2",
    "lava crater volcano": "v1",
    "oolong oxidised": "t2",
}


def chunks() -> list[Chunk]:
    return [Chunk(chunk_id=c, doc_id=d, title=t, text=x, position=i)
            for i, (c, d, t, x) in enumerate(CORPUS)]


@pytest.fixture(scope="module", params=[
    "embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Backend]:
    encoder = load_encoder("hash")
    if request.param == "embedded":
        from auditor.backends.embedded import EmbeddedBackend

        yield EmbeddedBackend.build(chunks(), tmp_path_factory.mktemp("contract"), encoder)
        return
    from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions

    url = request.getfixturevalue("es_url")
    name = f"auditor-test-contract-{uuid.uuid4().hex[:6]}"
    options = ElasticsearchOptions.from_settings(AuditSettings(es_url=url, es_index=name))
    backend = ElasticsearchBackend.build(options, chunks(),
                                         encoder)
    yield backend
    from elasticsearch import Elasticsearch

    with Elasticsearch(url) as client:
        client.options(ignore_status=404).indices.delete(index=name)


def top(backend: Backend, query: str, mode: str, depth: int = 10) -> list[str]:
    (result,) = backend.search_many([query], mode, depth)  # type: ignore[arg-type]
    assert result.error is None
    return [hit.chunk_id for hit in result.hits]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_unambiguous_queries_find_their_chunk(backend: Backend, mode: str) -> None:
    for query, expected in UNAMBIGUOUS.items():
        assert top(backend, query, mode)[0] == expected, (query, mode)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_ranks_scores_and_ties(backend: Backend, mode: str) -> None:
    (result,) = backend.search_many(["identical twin sentence"], mode, 10)  # type: ignore
    hits = result.hits
    assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    assert [hit.chunk_id for hit in hits[:2]] == ["dup-a", "dup-b"]  # tie: id ascending
    assert {hit.doc_id for hit in hits[:2]} == {"dupes"}


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_depth_limits_the_hits(backend: Backend, mode: str) -> None:
    assert len(top(backend, "tea planet lava twin", mode, depth=2)) == 2
    everything = top(backend, "tea planet lava twin", mode, depth=100)
    assert len(everything) == len(set(everything)) <= len(CORPUS)


def test_lexical_miss_is_an_empty_result_not_an_error(backend: Backend) -> None:
    assert top(backend, "zzyzx qwertyuiop", "bm25") == []


def test_batches_answer_in_order(backend: Backend) -> None:
    queries = list(UNAMBIGUOUS)
    results = backend.search_many(queries, "bm25", 3)
    assert [result.hits[0].chunk_id for result in results] == list(UNAMBIGUOUS.values())


def test_fetch_contains_and_unknown_ids(backend: Backend) -> None:
    fetched = backend.fetch(["t1", "missing"])
    assert set(fetched) == {"t1"}
    assert fetched["t1"]["doc_id"] == "tea" and "steamed" in fetched["t1"]["text"]
    assert backend.contains(["p2", "nope"], "chunk") == [True, False]
    assert backend.contains(["planets", "p2"], "doc") == [True, False]


def test_enumeration_is_complete(backend: Backend) -> None:
    assert sorted(backend.iter_ids()) == sorted((c, d) for c, d, _, _ in CORPUS)


def test_fingerprint_counts_and_hash_agree_across_backends(backend: Backend) -> None:
    from auditor.backends.embedded import content_hash

    fingerprint = backend.fingerprint()
    assert (fingerprint.document_count, fingerprint.chunk_count) == (4, 7)
    assert fingerprint.content_hash == content_hash(chunks())
    assert fingerprint.model_id == "hash-bow-384"


def test_embedded_and_elasticsearch_agree_on_bm25_top_hits(
    es_url: str, tmp_path: Path
) -> None:
    """Same corpus, same queries: the first hit agrees on every unambiguous query."""
    from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions
    from auditor.backends.embedded import EmbeddedBackend

    embedded = EmbeddedBackend.build(chunks(), tmp_path / "ix", None, stemmer="none")
    name = f"auditor-test-agree-{uuid.uuid4().hex[:6]}"
    options = ElasticsearchOptions.from_settings(AuditSettings(es_url=es_url, es_index=name))
    remote = ElasticsearchBackend.build(options, chunks(),
                                        None)
    try:
        for query in UNAMBIGUOUS:
            assert top(embedded, query, "bm25", 3)[0] == top(remote, query, "bm25", 3)[0]
    finally:
        from elasticsearch import Elasticsearch

        with Elasticsearch(es_url) as client:
            client.options(ignore_status=404).indices.delete(index=name)


# diagnosis primitives: analysis, a document's chunks, exact kNN ----------------------------
def test_analyze_gives_the_index_terms_of_each_text(backend: Backend) -> None:
    """One list per text, in order; lowercased; an empty text gives no terms. (Stemming and
    stop words are each index's own: bm25s stems, Elasticsearch's standard analyzer does not.)"""
    analyzed = backend.analyze(["SATURN Rings", "", "oolong tea"])
    assert len(analyzed) == 3
    assert analyzed[0][0] == "saturn" and analyzed[0][1].startswith("ring")
    assert analyzed[1] == []
    assert analyzed[2] == ["oolong", "tea"]
    assert backend.analyze([]) == []


def test_doc_chunks_in_position_order_and_unknown_documents_absent(backend: Backend) -> None:
    """Position order, not id order (dup-b sits before dup-a); unknown documents are absent."""
    found = backend.doc_chunks(["dupes", "planets", "no-such-doc", "tea"])
    assert found == {"dupes": ["dup-b", "dup-a"], "planets": ["p1", "p2"], "tea": ["t1", "t2"]}
    assert backend.doc_chunks([]) == {}


def test_exact_knn_agrees_with_dense_on_unambiguous_queries(backend: Backend) -> None:
    for query, expected in UNAMBIGUOUS.items():
        assert top(backend, query, "exact")[0] == expected == top(backend, query, "dense")[0]
    (exact,), (dense,) = (backend.search_many(["tea planet"], m, 7) for m in ("exact", "dense"))
    assert [h.score for h in exact.hits] == pytest.approx([h.score for h in dense.hits], abs=1e-5)


def test_unfiltered_needs_a_template(backend: Backend) -> None:
    from auditor.backends import BackendError

    with pytest.raises(BackendError):
        backend.search_many(["tea"], "unfiltered", 5)
