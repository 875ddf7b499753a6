"""The real all-MiniLM-L6-v2 model (marker ``model``): dense search finds paraphrases and
evidence support passes the shipped threshold (the hash encoder covers the rest in tests/core)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.backends.embedded import EmbeddedBackend
from auditor.embed import load_encoder
from auditor.evidence import SUPPORT_THRESHOLD, SupportScorer
from auditor.records import Chunk
from tests.core.test_embedded import DOCS, ids
from tests.core.test_evidence import PASSAGE


@pytest.mark.model
def test_real_minilm_finds_paraphrases(tmp_path: Path) -> None:
    chunks = [Chunk(chunk_id=i, doc_id=i, title=t, text=x) for i, t, x in DOCS]
    backend = EmbeddedBackend.build(chunks, tmp_path / "ix", load_encoder("minilm"))
    assert ids(backend, "a kitten lying in the sun", "dense")[0] == "a"
    assert ids(backend, "aquarium pets", "dense")[0] == "c"
    assert ids(backend, "kitten", "bm25") == []  # the lexical miss dense search repairs


@pytest.mark.model
def test_real_minilm_supports_a_paraphrase_and_rejects_an_unrelated_claim() -> None:
    scorer = SupportScorer(load_encoder("minilm"))
    paraphrase = "Engineer Gustave Eiffel's company designed the Paris tower, opened in 1889."
    unrelated = "The Great Wall of China was built to keep out northern invaders."
    wrong_detail = "The tower was designed by Gustave Eiffel and opened in 1925 in Lyon."
    scores = scorer.score_matrix([paraphrase, unrelated, wrong_detail], [PASSAGE])[:, 0]
    assert scores[0] >= SUPPORT_THRESHOLD
    assert scores[1] < SUPPORT_THRESHOLD
    assert scores[2] < scores[0]
