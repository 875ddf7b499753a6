"""The hot path's hand-built shortcuts give what the general code they replace gives."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa

from auditor.cases import Ranking
from auditor.metrics.drift import drift_many, overlap_at_k, rbo
from auditor.metrics.per_query import _drift, _served_json
from auditor.records import Hit, ServedItem


def test_served_json_is_the_json_of_each_items_model_dump() -> None:
    items = [ServedItem(id="d1", rank=2, score=0.5), ServedItem(id="d2"),
             ServedItem(id="d\u00e9\"3", rank=1, score=3)]
    assert _served_json(items) == json.dumps([item.model_dump() for item in items])
    assert _served_json([]) is None and _served_json(None) is None


def test_ranking_scores_and_chunks_are_each_ids_first_hit() -> None:
    hits = [Hit("c2", "d1", 1, 9.0), Hit("c1", "d2", 2, 8.0), Hit("c3", "d1", 3, 7.0),
            Hit("c4", "d3", 4, 6.0), Hit("c5", "d2", 5, 5.0)]
    doc = Ranking.of(hits, "doc")
    assert doc.ids == ["d1", "d2", "d3"]
    assert doc.ranks == {"d1": 1, "d2": 2, "d3": 3}
    assert doc.score == {"d1": 9.0, "d2": 8.0, "d3": 6.0}
    assert doc.chunk == {"d1": "c2", "d2": "c1", "d3": "c4"}
    chunk = Ranking.of(hits, "chunk")
    assert chunk.ids == ["c2", "c1", "c3", "c4", "c5"] and chunk.rank("c3") == 3
    assert chunk.score["c5"] == 5.0 and chunk.chunk["c4"] == "c4"
    assert not chunk.within("c5", 4) and chunk.within("c4", 4)


def test_drift_many_equals_overlap_and_rbo_bit_for_bit() -> None:
    rng = random.Random(7)
    served, replayed = [], []
    for _ in range(300):
        pool = [f"d{i}" for i in range(rng.choice([3, 12, 60, 150]))]
        served.append(rng.sample(pool, rng.randint(1, min(len(pool), 40))))
        replayed.append(rng.sample(pool, rng.randint(0, min(len(pool), 120))))
    served += [["a"], ["a", "b"], ["x", "y", "z"]]
    replayed += [[], ["b", "a"], ["x", "y", "z"]]
    ks = [1, 3, 10, 100]
    lengths = np.fromiter(map(len, replayed), np.int64)
    flat = pa.array([i for ids in replayed for i in ids], pa.string())
    overlap, rank_biased, repeats = drift_many(served, flat, lengths, ks)
    assert not repeats.any()
    for i, (a, b) in enumerate(zip(served, replayed, strict=True)):
        assert rank_biased[i] == rbo(a, b), (a, b)
        for k in ks:
            assert overlap[k][i] == overlap_at_k(a, b, k), (a, b, k)
    assert rank_biased[-1] == 1.0 and rank_biased[-3] == 0.0


def test_batch_drift_measures_a_served_list_with_repeats_alone() -> None:
    served = {"q1": ["a", "b", "a"], "q2": ["b", "c"]}
    ranked = {"q1": ["b", "a", "c"], "q2": ["c"], "q3": ["a"]}
    flat = pa.array(["b", "a", "c", "c", "a"], pa.string())
    _, _, repeats = drift_many(list(served.values()), flat.slice(0, 4), np.array([3, 1]), [2])
    assert repeats.tolist() == [True, False]
    out = _drift(["q1", "q2", "q3"], ranked, flat, served, [2, 10])
    assert out == {q: [overlap_at_k(served[q], ranked[q], 2),
                       overlap_at_k(served[q], ranked[q], 10), rbo(served[q], ranked[q])]
                   for q in served}
