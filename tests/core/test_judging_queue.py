"""The judging queue on a store built by hand: which pairs are pooled (the run's top k, the
latest other-mode run of the same log, silver evidence) and the order of expected impact
(gate pressure, silver evidence, disagreement between lists, rank discount)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from auditor.store import Store
from auditor.store.read.judging_queue import judging_queue, pair_chunks
from tests.handmade import add_run, empty_store, labels

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUNS = {  # run id → (mode, log, hours after T0)
    "base": ("bm25", "log.jsonl", 0),  # the baseline: same mode, never pooled
    "dense-old": ("dense", "log.jsonl", 1),  # an older dense run: not the latest dense
    "dense": ("dense", "log.jsonl", 2),
    "other-log": ("exact", "other.jsonl", 3),  # another log: never pooled
    "a": ("bm25", "log.jsonl", 4),  # the run being judged
}
HITS = {  # run id → {query id: ranked doc ids}
    "a": {"q1": ["d1", "d2"], "q2": ["d1", "d3"], "q3": ["d4"]},
    "dense": {"q1": ["d1", "d5"], "q2": ["d1", "d3"], "q3": ["d4"]},
    "dense-old": {"q1": ["d7"]},
    "other-log": {"q1": ["d6"]},
    "base": {"q1": ["d8"]},
}
METRICS = {  # (run, query, metric) → value
    ("a", "q1", "recall@10"): 0.2,  # under the min gate (0.5 + near): pressure
    ("a", "q2", "recall@10"): 1.0,
    ("a", "q3", "recall@10"): None,  # undefined: pressure
    ("a", "q1", "ndcg@10"): 0.3,
    ("a", "q2", "ndcg@10"): 0.5,  # below the baseline's 0.9: pressure (max_drop)
    ("a", "q3", "ndcg@10"): None,  # undefined: pressure
    ("base", "q1", "ndcg@10"): 0.3,
    ("base", "q2", "ndcg@10"): 0.9,
    ("base", "q3", "ndcg@10"): 0.5,
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = empty_store(Store(tmp_path / "audit.duckdb"))
    with duckdb.connect(str(store.path)) as con:
        for run_id, (mode, log, hours) in RUNS.items():
            add_run(con, run_id, mode=mode, log=log, started=T0 + timedelta(hours=hours),
                    hits=HITS[run_id], queries=("q1", "q2", "q3"),
                    baseline="base" if run_id == "a" else None)
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                        [[*key, value] for key, value in METRICS.items()])
        con.executemany(
            "INSERT INTO gates (run_id, gate, metric, kind, passed, value, threshold, reason, "
            "status) VALUES ('a', ?, ?, ?, true, 0.1, ?, '', 'passed')",
            [["recall floor", "recall@10", "min", 0.5],
             ["ndcg drop", "ndcg@10", "max_drop", 0.02]])
        con.executemany(
            "INSERT INTO sentences (run_id, query_id, idx, text, start_char, end_char, status, "
            "best_chunk_id, best_doc_id, best_score, composite) VALUES "
            "('a', 'q2', ?, 's', 0, 1, ?, ?, ?, 0.9, false)",
            [[0, "retrievable_not_retrieved", "d9#0", "d9"],  # silver evidence, never ranked
             [1, "ungrounded", "d8#0", "d8"]])  # not evidence
    store.add_list_version("qrels", labels([("q2", "d1", 1, "imported:q.tsv")], T0),
                           origin="test", note=None, layout={}, digest="x")
    return store


def test_pooled_pairs_come_highest_expected_impact_first(store: Store) -> None:
    queue = judging_queue(store, "a", "doc", 10, "qrels", 1).to_pylist()
    got = [(row["query_id"], row["id"]) for row in queue]
    assert got == [("q3", "d4"), ("q1", "d1"), ("q1", "d2"), ("q1", "d5"), ("q2", "d3"),
                   ("q2", "d9")]
    by_pair = {(row["query_id"], row["id"]): row for row in queue}
    discount = 1 / math.log2(3)
    assert by_pair[("q3", "d4")]["impact"] == pytest.approx(1 + 2)  # two gates, rank 1
    assert by_pair[("q1", "d1")]["impact"] == pytest.approx(1 + 1)  # lists agree
    assert by_pair[("q1", "d2")]["impact"] == pytest.approx(discount * (1 + 1 + 1))
    assert by_pair[("q1", "d2")]["modes"] == ["bm25"] and by_pair[("q1", "d2")]["disagree"]
    assert by_pair[("q1", "d5")]["modes"] == ["dense"]
    assert by_pair[("q1", "d1")]["modes"] == ["bm25", "dense"]
    assert by_pair[("q2", "d3")]["impact"] == pytest.approx(discount * (1 + 1))
    silver = by_pair[("q2", "d9")]
    assert silver["silver"] and silver["rank"] is None
    assert silver["impact"] == pytest.approx((1 + 1 + 1) / math.log2(12))


def test_the_pool_depth_and_the_judged_version_bound_the_queue(store: Store) -> None:
    """At k = 1 only first ranks (and silver evidence) are pooled; a version that judges
    nothing yet (0: a new list) queues the judged pair too."""
    top1 = judging_queue(store, "a", "doc", 1, "qrels", 1).to_pylist()
    assert [(row["query_id"], row["id"]) for row in top1] == [
        ("q3", "d4"), ("q1", "d1"), ("q2", "d9")]
    fresh = judging_queue(store, "a", "doc", 10, "new-list", None).to_pylist()
    assert ("q2", "d1") in {(row["query_id"], row["id"]) for row in fresh}


def test_a_queued_pair_names_the_chunks_to_show(store: Store) -> None:
    """Ranked chunks of the document by any stored run, best first; silver evidence's
    best chunk otherwise."""
    assert pair_chunks(store, "a", "doc", "q1", "d5") == ["d5#0"]  # the dense run's
    assert pair_chunks(store, "a", "doc", "q2", "d9") == ["d9#0"]  # silver only
    assert pair_chunks(store, "a", "chunk", "q1", "d1#0") == ["d1#0"]
    assert pair_chunks(store, "a", "doc", "q1", "nowhere") == []


def test_ablation_rankings_of_missed_queries_are_pooled(store: Store) -> None:
    """A pair only the run's dense ablation ranks is queued as ``ablation:dense`` (and
    disagrees with the run's own list); its chunk is named for the page."""
    with duckdb.connect(str(store.path)) as con:
        con.executemany("INSERT INTO ablation_hits VALUES ('a', 0, 'q1', ?, ?, ?, ?, 1.0)",
                        [["dense", 1, "d1#0", "d1"], ["dense", 2, "d10#3", "d10"],
                         ["exact", 1, "d11#0", "d11"]])
    queue = {(row["query_id"], row["id"]): row
             for row in judging_queue(store, "a", "doc", 10, "qrels", 1).to_pylist()}
    pooled = queue[("q1", "d10")]
    assert pooled["modes"] == ["ablation:dense"] and pooled["rank"] == 2
    assert pooled["disagree"]
    assert queue[("q1", "d1")]["modes"] == ["ablation:dense", "bm25", "dense"]
    assert queue[("q1", "d11")]["modes"] == ["ablation:exact"]
    assert pair_chunks(store, "a", "doc", "q1", "d10") == ["d10#3"]
