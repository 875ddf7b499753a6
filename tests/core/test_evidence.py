"""Answer sentences and their support: golden splits, the score's properties on the hash
encoder, composite support (real MiniLM: tests/integration/test_minilm.py; FaithBench labels:
tests/oracle/test_faithbench.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from functools import cache
from types import ModuleType

import numpy as np
import pytest

from auditor import evidence
from auditor.backends.embedded import _tokenize
from auditor.embed import HashEncoder, load_encoder
from auditor.evidence import SUPPORT_THRESHOLD, SupportScorer, composite_support, supported
from auditor.sentences import Sentence, content_words, is_factual, split_sentences
from tests.conftest import ROOT


def texts(answer: str) -> list[str]:
    return [s.text for s in split_sentences(answer)]


# splitting -----------------------------------------------------------------------------
GOLDEN = [
    (
        "Dr. Smith met Mr. Jones in the U.S. on Jan. 5. They talked for 3.5 hours, "
        "e.g. about cats, i.e. pets. Then they left!",
        [
            "Dr. Smith met Mr. Jones in the U.S. on Jan. 5.",
            "They talked for 3.5 hours, e.g. about cats, i.e. pets.",
            "Then they left!",
        ],
    ),
    (
        "Smith et al. (2020) reported a 2.5% rise. The effect was small.",
        ["Smith et al. (2020) reported a 2.5% rise.", "The effect was small."],
    ),
    (
        "J. R. R. Tolkien wrote it. Prof. Lee agreed, approx. twice.",
        ["J. R. R. Tolkien wrote it.", "Prof. Lee agreed, approx. twice."],
    ),
    (
        "No. 5 was retired. The answer is no. Next.",
        ["No. 5 was retired.", "The answer is no.", "Next."],
    ),
    ('He said "we will win." The crowd cheered.', ['He said "we will win."', "The crowd cheered."]),
    (
        "Is it safe? Yes, it is safe to use. I hope this helps!",
        ["Is it safe?", "Yes, it is safe to use.", "I hope this helps!"],
    ),
    (
        "Key facts:\n- The tower is 330 m tall.\n- It opened in 1889.\n\n1. Paris hosts it.\n"
        "b) a lettered item.",
        [
            "Key facts:",
            "The tower is 330 m tall.",
            "It opened in 1889.",
            "Paris hosts it.",
            "a lettered item.",
        ],
    ),
    (
        "The committee approved the\nbudget on Monday.",
        ["The committee approved the\nbudget on Monday."],
    ),
    (
        "Version 2.0.1 shipped on 3.4.2024 at 10.30 am.",
        ["Version 2.0.1 shipped on 3.4.2024 at 10.30 am."],
    ),
    ("  \n ", []),
]


@pytest.mark.parametrize(("answer", "expected"), GOLDEN)
def test_splitter_golden(answer: str, expected: list[str]) -> None:
    assert texts(answer) == expected


@pytest.mark.parametrize(("answer", "expected"), GOLDEN)
def test_offsets_slice_back_to_the_text(answer: str, expected: list[str]) -> None:
    sentences = split_sentences(answer)
    assert [s.index for s in sentences] == list(range(len(sentences)))
    for sentence in sentences:
        assert answer[sentence.start : sentence.end] == sentence.text
    assert all(a.end <= b.start for a, b in zip(sentences, sentences[1:], strict=False))


def test_splitter_is_deterministic_and_returns_sentences() -> None:
    answer = GOLDEN[0][0]
    assert split_sentences(answer) == split_sentences(answer)
    assert isinstance(split_sentences(answer)[0], Sentence)


@pytest.mark.parametrize(
    "fragment",
    [
        "Is the tower taller than 300 metres?",
        "I hope this helps!",
        "Let me know if you need anything else about the tower.",
        "Here is a concise summary of the passage:",
        "Here's a short summary covering the core facts of the passage.",
        "Based on the provided documents:",
        "In summary,",
        "Key points include:",
        "It opened in 1889.",  # two content words: too little to check
        "",
    ],
)
def test_non_factual_fragments_are_skipped(fragment: str) -> None:
    assert not is_factual(fragment)


@pytest.mark.parametrize(
    "claim",
    [
        "The Eiffel Tower opened to visitors in 1889.",
        "Based on the provided context, the capital of France is Paris on the Seine.",
        "In summary, the tower was the tallest structure in the world for 41 years.",
        "Yes, it is safe to use.",
    ],
)
def test_claims_are_factual(claim: str) -> None:
    assert is_factual(claim)
    assert is_factual(Sentence(0, claim, 0, len(claim)))


# content words ---------------------------------------------------------------------------
def test_content_words_are_the_bm25s_terms() -> None:
    samples = [
        "The runners were running quickly through Paris in 1889!",
        "Its passages mention U.S. policies; it is an e-mail.",
        "",
    ]
    assert [content_words(t) for t in samples] == _tokenize(samples, "english")
    assert content_words("The cats are running") == ["cat", "run"]


# support score ---------------------------------------------------------------------------
class CountingEncoder:
    """The hash encoder, recording every call so tests can see the cache work."""

    def __init__(self) -> None:
        self.inner = HashEncoder()
        self.model_id = self.inner.model_id
        self.dim = self.inner.dim
        self.calls: list[list[str]] = []

    def encode(self, items: Sequence[str]) -> np.ndarray:
        self.calls.append(list(items))
        return self.inner.encode(items)


PASSAGE = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. "
    "It was designed by the company of engineer Gustave Eiffel. "
    "The tower opened in 1889 for the World's Fair. "
    "Locals first criticised its design, but it became a global icon of France."
)
UNRELATED = "Goldfish swim slowly in a glass bowl on the kitchen table."


def test_score_matrix_shape_range_and_golden_cases() -> None:
    scorer = SupportScorer(HashEncoder())
    same = "The tower opened in 1889 for the World's Fair."
    sentences = [same, "Octopuses have three hearts and blue blood.", "The tower opened in 1889."]
    matrix = scorer.score_matrix(sentences, [PASSAGE, UNRELATED])
    assert matrix.shape == (3, 2) and matrix.dtype == np.float32
    assert ((matrix >= 0) & (matrix <= 1)).all()
    assert supported(float(matrix[0, 0])) and matrix[0, 0] > 0.85
    assert not supported(float(matrix[1, 0])) and not supported(float(matrix[1, 1]))
    assert matrix[0, 0] > matrix[0, 1]


def test_window_beats_the_diluted_whole_passage() -> None:
    signals = SupportScorer(HashEncoder()).signals(
        ["The tower opened in 1889 for the World's Fair."], [PASSAGE]
    )
    assert signals.window[0, 0] == pytest.approx(1.0, abs=1e-5)  # the identical window
    assert signals.passage[0, 0] < 0.8
    assert signals.dense[0, 0] == signals.window[0, 0]


def test_containment_and_absent_count_content_words() -> None:
    scorer = SupportScorer(HashEncoder())
    sentence = "Gustave Eiffel designed the tower in Lyon."  # gustav eiffel design tower lyon
    signals = scorer.signals([sentence, "the of and"], [PASSAGE, ""])
    assert signals.containment[0, 0] == pytest.approx(4 / 5)
    assert signals.absent[0, 0] == 1
    assert signals.containment[0, 1] == 0 and signals.absent[0, 1] == 5
    assert signals.containment[1, 0] == 0 and signals.absent[1, 0] == 0  # no content words
    assert (evidence.blend(signals)[1] == 0).all()  # ...so no evidence, even from ""
    # words about the text itself are not claims: "the passage mentions" costs nothing
    meta = scorer.signals(["The passage mentions that the tower opened in 1889."], [PASSAGE])
    assert meta.containment[0, 0] == 1.0 and meta.absent[0, 0] == 0


def test_score_rises_with_every_matched_word() -> None:
    """For one sentence, a passage holding more of its words never scores lower."""
    lacking = evidence.SupportSignals(*(np.full((3, 1), v, dtype=np.float32)
                                        for v in (0.6, 0.5, 0.9, 1.0)),
                                      missing=np.array([[2.0], [1.0], [0.0]], np.float32))
    assert (np.diff(evidence.blend(lacking)[:, 0]) > 0).all()  # fewer anchors lacking
    for size in range(1, 30):
        matched = np.arange(size + 1, dtype=np.float32)[:, None]
        signals = evidence.SupportSignals(
            window=np.full_like(matched, 0.6),
            passage=np.full_like(matched, 0.5),
            containment=matched / size,
            absent=size - matched,
        )
        assert (np.diff(evidence.blend(signals)[:, 0]) > 0).all()


def test_a_passage_lacking_an_anchor_cannot_support() -> None:
    """The anchor gate: a passage holding every word but the sentence's number, date or name
    scores under the threshold, below the passage that holds it, and keeps its order."""
    scorer = SupportScorer(HashEncoder())
    sentence = "As of the 2010 census, the county population was 9,984."
    right = "As of the 2010 census, the county population was 9984."
    wrong = "As of the 2010 census, the county population was 9,312."
    other = "As of the 2000 census, the county population was 9,312."
    scores = scorer.score_matrix([sentence], [right, wrong, other])[0]
    assert supported(float(scores[0]))
    assert not supported(float(scores[1])) and not supported(float(scores[2]))
    assert scores[0] > scores[1] > scores[2]
    pruned = SupportScorer(HashEncoder()).score_pruned([sentence], [right, wrong, other])[0]
    assert (pruned >= SUPPORT_THRESHOLD).tolist() == (scores >= SUPPORT_THRESHOLD).tolist()
    signals = scorer.signals([sentence], [right, wrong, other])
    assert signals.missing is not None and signals.missing[0].tolist() == [0, 1, 2]
    # even a perfect lexical and dense match stays under the threshold when gated
    ones = np.ones((1, 1), dtype=np.float32)
    gated = evidence.SupportSignals(ones, ones, ones, ones * 0, missing=ones)
    assert float(evidence.blend(gated)[0, 0]) < SUPPORT_THRESHOLD


def test_composite_support_counts_anchors_across_the_join() -> None:
    scorer = SupportScorer(HashEncoder())
    chunks = ["The Harbour Bridge in Sydney opened to traffic in 1932.",
              "It carries 160,000 vehicles each day across the harbour.",
              "Goldfish swim slowly in a glass bowl on the kitchen table."]
    claim = "The Harbour Bridge opened in 1932 and carries 160,000 vehicles each day."
    result = composite_support(scorer, claim, chunks)
    assert result.composite and result.chunks == (0, 1) and supported(result.score)
    wrong = "The Harbour Bridge opened in 1932 and carries 180,000 vehicles each day."
    assert not supported(composite_support(scorer, wrong, chunks).score)


def test_scores_are_deterministic() -> None:
    sentences = ["Gustave Eiffel designed the tower.", UNRELATED]
    first = SupportScorer(HashEncoder()).score_matrix(sentences, [PASSAGE, UNRELATED])
    second = SupportScorer(HashEncoder()).score_matrix(sentences, [PASSAGE, UNRELATED])
    np.testing.assert_array_equal(first, second)


def test_embeddings_are_cached_and_deduplicated() -> None:
    encoder = CountingEncoder()
    scorer = SupportScorer(encoder)
    sentences = ["Gustave Eiffel designed the tower.", "Gustave Eiffel designed the tower."]
    first = scorer.score_matrix(sentences, [PASSAGE, UNRELATED])
    assert len(encoder.calls) == 1  # one batched call for sentences, passages and windows
    assert len(encoder.calls[0]) == len(set(encoder.calls[0]))
    second = scorer.score_matrix(sentences, [PASSAGE, UNRELATED])
    assert len(encoder.calls) == 1  # everything came from the cache
    np.testing.assert_array_equal(first, second)
    assert scorer.missing([*sentences, "A new sentence."]) == ["A new sentence."]
    key = evidence.embedding_key(encoder.model_id, sentences[0])
    assert key in scorer.cache and scorer.cache[key].shape == (encoder.dim,)
    # a persisted cache handed to a new scorer is reused as is
    reused = SupportScorer(encoder, cache=scorer.cache)
    reused.score_matrix(sentences, [PASSAGE])
    assert len(encoder.calls) == 1


def test_embedding_key_depends_on_model_and_text() -> None:
    keys = {
        evidence.embedding_key("m1", "text"),
        evidence.embedding_key("m2", "text"),
        evidence.embedding_key("m1", "text "),
    }
    assert len(keys) == 3 and all(len(k) == 64 for k in keys)


# composite support -------------------------------------------------------------------------
CHUNKS = [
    "The Harbour Bridge was planned for decades. Construction finally began in 1923.",
    "The bridge opened in 1932.",
    "It carries six lanes of traffic across the harbour.",
    "Goldfish swim slowly in a glass bowl on the kitchen table.",
]


def test_support_split_across_adjacent_chunks_is_composite() -> None:
    scorer = SupportScorer(HashEncoder())
    claim = "The bridge opened in 1932 and carries six lanes of traffic across the harbour."
    singles = scorer.score_matrix([claim], CHUNKS)[0]
    assert not any(supported(float(s)) for s in singles)
    result = composite_support(scorer, claim, CHUNKS)
    assert result.composite and result.chunks == (1, 2)
    assert supported(result.score)


def test_single_chunk_support_is_not_composite() -> None:
    scorer = SupportScorer(HashEncoder())
    result = composite_support(scorer, "The bridge opened to traffic in 1932.", CHUNKS)
    assert supported(result.score) and not result.composite and result.chunks == (1,)


def test_unsupported_claim_is_neither() -> None:
    scorer = SupportScorer(HashEncoder())
    result = composite_support(scorer, "Octopuses have three hearts and blue blood.", CHUNKS)
    assert not supported(result.score) and not result.composite
    assert composite_support(scorer, "Anything at all here.", []).chunks == ()


# FaithBench labels ---------------------------------------------------------------------------
@cache
def _bench() -> ModuleType:
    """bench/faithbench.py is a script, not a package: load it by path."""
    spec = importlib.util.spec_from_file_location("faithbench", ROOT / "bench" / "faithbench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_bench_auc_and_threshold_helpers() -> None:
    bench = _bench()
    labels = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    assert bench.roc_auc(labels, np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])) == 1.0
    assert bench.roc_auc(labels, np.zeros(6)) == 0.5  # all tied
    support = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])  # unsupported ones score low
    threshold = bench.best_threshold(labels, support)
    assert 0.3 < threshold < 0.7


def test_pruned_scores_make_the_same_decisions_and_embed_less() -> None:
    from auditor.evidence import SupportScorer

    class Counting:
        model_id, dim = "hash-bow-384", 384

        def __init__(self) -> None:

            self.inner, self.texts = load_encoder("hash"), 0

        def encode(self, texts):
            self.texts += len(texts)
            return self.inner.encode(texts)

    sentences = ["The cat sat on the warm mat today.", "Paris is the capital of France."]
    passages = [
        "The cat sat on the warm mat today. It purred.",
        "Paris is the capital of France and its largest city.",
        "Quantum chromodynamics describes the strong interaction between quarks.",
        "Volcanic eruptions release ash, gases and lava flows into valleys.",
        "Tea ceremonies in Kyoto follow precise seasonal rituals and utensils.",
    ]
    full_encoder, pruned_encoder = Counting(), Counting()
    full = SupportScorer(full_encoder).score_matrix(sentences, passages)
    pruned = SupportScorer(pruned_encoder).score_pruned(sentences, passages, keep_best=1)
    assert ((full >= SUPPORT_THRESHOLD) == (pruned >= SUPPORT_THRESHOLD)).all()
    assert (pruned <= full + 1e-6).all()  # pruned cells are lower bounds
    assert abs(pruned[0, 0] - full[0, 0]) < 1e-6 and abs(pruned[1, 1] - full[1, 1]) < 1e-6
    assert pruned_encoder.texts < full_encoder.texts


def test_a_quoted_title_ending_in_a_question_mark_is_still_a_claim() -> None:
    from auditor.sentences import is_factual

    assert is_factual('The rhyme is also known as "What Are Little Boys Made Of?"')
    assert not is_factual("What are little boys made of, and where does the rhyme come from?")
