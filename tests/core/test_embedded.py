"""The embedded backend on corpora small enough to check by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auditor.backends import Backend, BackendError, fuse_rrf
from auditor.backends.embedded import EmbeddedBackend, top_k
from auditor.embed import load_encoder
from auditor.records import Chunk, Hit

DOCS = [
    ("a", "Cats", "a cat purrs on the warm windowsill"),
    ("b", "Dogs", "the dog barks at the mail carrier"),
    ("c", "Fish", "goldfish swim slowly in a glass bowl"),
    ("d", "Birds", "a parrot can imitate human speech"),
]


@pytest.fixture
def tiny(tmp_path: Path) -> EmbeddedBackend:
    chunks = [Chunk(chunk_id=i, doc_id=i, title=t, text=x) for i, t, x in DOCS]
    return EmbeddedBackend.build(chunks, tmp_path / "index", load_encoder("hash"))


def ids(backend: EmbeddedBackend, query: str, mode: str, depth: int = 10) -> list[str]:
    (result,) = backend.search_many([query], mode, depth)  # type: ignore[arg-type]
    return [hit.chunk_id for hit in result.hits]


def test_implements_the_protocol(tiny: EmbeddedBackend) -> None:
    assert isinstance(tiny, Backend)


def test_bm25_golden(tiny: EmbeddedBackend) -> None:
    assert ids(tiny, "barking dog", "bm25") == ["b"]
    assert ids(tiny, "parrot speech", "bm25") == ["d"]
    assert ids(tiny, "cat or goldfish", "bm25")[:2] in (["a", "c"], ["c", "a"])
    assert ids(tiny, "zebra", "bm25") == []  # nothing matches: no zero-score filler
    assert ids(tiny, "the a of", "bm25") == []  # stopwords only


def test_stemming_matches_inflections(tmp_path: Path) -> None:
    chunks = [Chunk(chunk_id="x", doc_id="x", text="running runners run")]
    stemmed = EmbeddedBackend.build(chunks, tmp_path / "s", None, stemmer="english")
    plain = EmbeddedBackend.build(chunks, tmp_path / "p", None, stemmer="none")
    assert ids(stemmed, "runs", "bm25") == ["x"]
    assert ids(plain, "runs", "bm25") == []


def test_dense_and_hybrid_rank_every_chunk(tiny: EmbeddedBackend) -> None:
    dense = ids(tiny, "dog barks", "dense")
    assert dense[0] == "b" and sorted(dense) == ["a", "b", "c", "d"]
    assert ids(tiny, "dog barks", "hybrid")[0] == "b"
    assert ids(tiny, "dog barks", "dense", depth=2) == dense[:2]


def test_ties_break_by_chunk_id(tmp_path: Path) -> None:
    chunks = [Chunk(chunk_id=i, doc_id="same", text="identical text") for i in ("z", "m", "a")]
    backend = EmbeddedBackend.build(chunks, tmp_path / "ix", load_encoder("hash"))
    for mode in ("bm25", "dense", "hybrid"):
        assert ids(backend, "identical", mode) == ["a", "m", "z"], mode
        assert ids(backend, "identical", mode, depth=2) == ["a", "m"], mode


def test_top_k_keeps_ties_at_the_boundary() -> None:
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    order = np.array([4, 3, 2, 1, 0])  # id order: row 4 has the smallest id
    assert top_k(scores, order, 2, floor=None).tolist() == [3, 2]
    assert top_k(scores, order, 10, floor=0.9).tolist() == [3, 2, 1, 0]


def test_reopened_index_answers_the_same(tiny: EmbeddedBackend) -> None:
    again = EmbeddedBackend.open(tiny.directory, load_encoder("hash"))
    for mode in ("bm25", "dense", "hybrid"):
        first = tiny.search_many(["warm cat", "glass bowl"], mode, 3)
        assert again.search_many(["warm cat", "glass bowl"], mode, 3) == first


def test_index_files_are_inspectable_and_pickle_free(tiny: EmbeddedBackend) -> None:
    files = {p.relative_to(tiny.directory).as_posix() for p in tiny.directory.rglob("*")}
    assert {"manifest.json", "chunks.jsonl", "embeddings.npy", "bm25"} <= files
    manifest = json.loads((tiny.directory / "manifest.json").read_text())
    assert manifest["chunk_count"] == 4 and manifest["model_id"] == "hash-bow-384"
    vectors = np.load(tiny.directory / "embeddings.npy", allow_pickle=False)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    for npy in tiny.directory.rglob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if anything was pickled


def test_lookups(tiny: EmbeddedBackend) -> None:
    assert tiny.fetch(["b", "nope"]) == {"b": {"doc_id": "b", "title": "Dogs",
                                               "text": DOCS[1][2]}}
    assert tiny.contains(["a", "zz"], "chunk") == [True, False]
    assert tiny.contains(["d", "zz"], "doc") == [True, False]
    assert sorted(tiny.iter_ids()) == [(i, i) for i, _, _ in DOCS]


def test_fingerprint_follows_content_not_order(tmp_path: Path) -> None:
    chunks = [Chunk(chunk_id=i, doc_id=i, title=t, text=x) for i, t, x in DOCS]
    first = EmbeddedBackend.build(chunks, tmp_path / "1", None).fingerprint()
    shuffled = EmbeddedBackend.build(chunks[::-1], tmp_path / "2", None).fingerprint()
    changed = [*chunks[:3], chunks[3].model_copy(update={"text": "a parrot sings"})]
    third = EmbeddedBackend.build(changed, tmp_path / "3", None).fingerprint()
    assert first.content_hash == shuffled.content_hash != third.content_hash
    assert (first.document_count, first.chunk_count) == (4, 4)


def test_clear_errors(tmp_path: Path, tiny: EmbeddedBackend) -> None:
    with pytest.raises(BackendError, match="auditor index build"):
        EmbeddedBackend.open(tmp_path / "missing", None)
    with pytest.raises(BackendError, match="duplicate chunk id"):
        EmbeddedBackend.build([Chunk(chunk_id="x", doc_id="x")] * 2, tmp_path / "d", None)
    with pytest.raises(BackendError, match="no indexable words"):
        EmbeddedBackend.build([Chunk(chunk_id="x", doc_id="x", text="a the")], tmp_path / "e",
                              None)
    bm25_only = EmbeddedBackend.build([Chunk(chunk_id="x", doc_id="x", text="tea")],
                                      tmp_path / "b", None)
    with pytest.raises(BackendError, match="no embeddings"):
        bm25_only.search_many(["tea"], "dense", 5)
    with pytest.raises(BackendError, match="needs Elasticsearch"):
        tiny.search_many(["t"], "template", 5)


def test_rrf_fusion_formula() -> None:
    a = [Hit("x", "x", 1, 9.0), Hit("y", "y", 2, 8.0)]
    b = [Hit("y", "y", 1, 0.9), Hit("z", "z", 2, 0.8)]
    fused = fuse_rrf([a, b], depth=3)
    assert [hit.chunk_id for hit in fused] == ["y", "x", "z"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert [hit.rank for hit in fused] == [1, 2, 3]


def test_exact_is_dense_and_unfiltered_needs_elasticsearch(tiny: EmbeddedBackend) -> None:
    exact = tiny.search_many(["cat", "dog barks"], "exact", 3)
    assert exact == tiny.search_many(["cat", "dog barks"], "dense", 3)
    with pytest.raises(BackendError, match="needs Elasticsearch"):
        tiny.search_many(["cat"], "unfiltered", 3)


def test_analyze_is_the_bm25_tokenization(tiny: EmbeddedBackend, tmp_path: Path) -> None:
    assert tiny.analyze(["The cats were RUNNING", "of the"]) == [["cat", "were", "run"], []]
    plain = EmbeddedBackend.build([Chunk(chunk_id="x", doc_id="X", text="cats")],
                                  tmp_path / "plain", None, stemmer="none")
    assert plain.analyze(["The cats were RUNNING"]) == [["cats", "were", "running"]]
