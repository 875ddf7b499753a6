"""The hot path's hand-built shortcuts give what the general code they replace gives."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pyarrow as pa

from auditor.cases import Ranking
from auditor.metrics.drift import drift_many, overlap_at_k, rbo
from auditor.metrics.per_query import _drift, _hit_columns, _served_json
from auditor.records import Hit, HitList, ServedItem, hit_field


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


def _columns(hits: list[Hit]) -> HitList:
    return HitList(np.array([h.chunk_id for h in hits], dtype=object),
                   np.array([h.doc_id for h in hits], dtype=object),
                   np.array([h.score for h in hits]))


def test_a_hit_list_reads_as_the_hits_it_holds() -> None:
    hits = [Hit("c2", "d1", 1, 9.5), Hit("c1", "d2", 2, 8.0), Hit("c3", "d1", 3, 7.25)]
    held = _columns(hits)
    assert list(held) == hits and held == hits and len(held) == 3
    assert held[1] == hits[1] and held[-1] == hits[-1]
    assert isinstance(held[:2], HitList) and held[:2] == hits[:2] and held[:10] == hits
    assert held[1:] == hits[1:] and held[::2] == hits[::2]  # ranks kept: plain hits
    assert not _columns([]) and held != hits[:2]
    assert hit_field(held, "doc_id") == ["d1", "d2", "d1"] == hit_field(hits, "doc_id")
    assert Ranking.of(held, "doc").score == Ranking.of(hits, "doc").score
    assert pickle.loads(pickle.dumps(held)) == hits  # Ray ships batches pickled


def test_hit_columns_are_the_same_from_hit_lists_and_from_hits() -> None:
    lists = [[Hit("c2", "d1", 1, 9.5), Hit("c1", "d2", 2, 8.0)], [Hit("c9", "d9", 1, 0.5)],
             [Hit("c3", "d1", 1, 7.25), Hit("c4", "d4", 2, 7.0), Hit("c5", "d4", 3, 1.0)]]
    plain = _hit_columns(lists)
    columnar = _hit_columns([_columns(hits) for hits in lists])
    assert plain[0].equals(columnar[0]) and plain[1].equals(columnar[1])
    assert plain[2].tolist() == columnar[2].tolist() == [1, 2, 1, 1, 2, 3]
    assert plain[3].tolist() == columnar[3].tolist()
