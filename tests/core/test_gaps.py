"""Knowledge gaps: clusters of queries set against the corpus (auditor.gaps)."""

from __future__ import annotations

import numpy as np

from auditor.gaps import MIN_QUERIES, QueryFacts, class_tfidf_terms, cluster_count, find_gaps

TOPICS = {  # topic -> (words its queries use, queries, failing share)
    "statins": ("statin cholesterol heart", 20, 0.1),
    "malaria": ("malaria parasite mosquito", 20, 0.1),
    "prions": ("prion protein appendix", 15, 1.0),
}


def _planted(seed: int = 3) -> tuple[list[QueryFacts], np.ndarray, np.ndarray]:
    """Three topics in three directions; the corpus has chunks about the first two only."""
    rng = np.random.default_rng(seed)
    directions = np.eye(3, 16)
    facts, vectors = [], []
    for t, (name, (words, n, failing)) in enumerate(TOPICS.items()):
        for i in range(n):
            fails = i < round(n * failing)
            facts.append(QueryFacts(f"{name}-{i}", f"{words} question {i}",
                                    ("not_retrieved",) if fails else (), int(fails)))
            vectors.append(directions[t] + rng.normal(0, 0.05, 16))
    chunks = np.vstack([directions[t] + rng.normal(0, 0.05, (100, 16)) for t in (0, 1)])
    unit = lambda m: (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return facts, unit(np.array(vectors)), unit(chunks)


def test_a_topic_the_corpus_lacks_ranks_first_with_low_density() -> None:
    facts, queries, chunks = _planted()
    gaps = find_gaps(facts, queries, chunks, seed=0, clusters=3)
    first = gaps.clusters[0]
    members = {q for q, c in gaps.members.items() if c == first.cluster}
    assert members == {f.query_id for f in facts if f.query_id.startswith("prions")}
    assert first.queries == 15 and first.failure_share == 1.0 and first.gap_score == 15
    assert first.corpus_density == 0.0 < first.query_share
    assert "prion" in first.terms and first.top_causes == [("not_retrieved", 15)]
    assert first.unsupported == 15
    assert sum(c.corpus_density or 0 for c in gaps.clusters) == 1.0
    assert sum(c.queries for c in gaps.clusters) == len(facts) and gaps.chunks == 200
    covered = gaps.clusters[1:]
    assert all(c.corpus_density == 0.5 and c.failure_share == 0.1 for c in covered)


def test_the_same_seed_gives_the_same_clusters() -> None:
    facts, queries, chunks = _planted()
    one, two = (find_gaps(facts, queries, chunks, seed=7) for _ in range(2))
    assert one.members == two.members
    assert [(c.label, c.x, c.y) for c in one.clusters] == [(c.label, c.x, c.y)
                                                           for c in two.clusters]


def test_too_few_queries_is_not_evaluated() -> None:
    facts, queries, chunks = _planted()
    few = find_gaps(facts[:MIN_QUERIES - 1], queries[:MIN_QUERIES - 1], chunks)
    assert not few.clusters and not few.members
    assert few.not_evaluated and "at least 10" in few.not_evaluated


def test_without_chunk_vectors_density_is_unknown_not_zero() -> None:
    facts, queries, _ = _planted()
    gaps = find_gaps(facts, queries, None, clusters=3)
    assert all(c.corpus_density is None for c in gaps.clusters) and gaps.chunks == 0


def test_class_tfidf_names_each_class_by_its_own_words() -> None:
    texts = ["statin cholesterol risk", "statin heart risk", "malaria mosquito risk",
             "malaria parasite risk"]
    terms = class_tfidf_terms(texts, np.array([0, 0, 1, 1]), 2, top=1)
    assert terms == [["statin"], ["malaria"]]  # "risk" is in both: not distinctive


def test_cluster_count_grows_with_the_queries_within_bounds() -> None:
    assert cluster_count(10) == 2 and cluster_count(50) == 5 and cluster_count(200) == 10
    assert cluster_count(10_000_000) == 40
