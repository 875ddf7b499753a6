"""Causes: every rule fires on a case built for it and stays silent on its near miss (the
threshold edge); several causes can hold at once; ``gather`` finds ablations, terms, texts
and explanations from a real embedded index (Elasticsearch: tests/elasticsearch/)."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, get_args

import pytest

from auditor.ablations import gather
from auditor.backends.embedded import EmbeddedBackend
from auditor.cases import (
    CAUSES,
    Cause,
    ConflictRef,
    Diagnosis,
    QueryCase,
    SentenceSupport,
    Thresholds,
)
from auditor.config import AuditSettings
from auditor.diagnose import RULES, diagnose, duplicate_groups
from auditor.embed import load_encoder
from auditor.records import Chunk, Hit

T = Thresholds(k=3)


def hits(*chunk_ids: str) -> list[Hit]:
    """Hits in the given order, scores 10, 9, 8, ...; a chunk ``d#n`` belongs to ``d``."""
    return [Hit(cid, cid.split("#")[0], rank, 10.0 - rank + 1)
            for rank, cid in enumerate(chunk_ids, start=1)]


def case(**changes: Any) -> QueryCase:
    base = QueryCase(
        query_id="q1", query="how do cats purr", status="ok",
        hits=hits("a#0", "b#0", "c#0", "d#0", "e#0"), depth=100, mode="bm25", level="chunk",
        targets=[], silver=False, missing_targets=[], served=None, replay_latency_ms=10.0,
        served_latency_ms=None,
    )
    return replace(base, **changes)


def sentence(index: int = 0, **changes: Any) -> SentenceSupport:
    base = SentenceSupport(index=index, text=f"sentence {index}", supported_served=False,
                           replayed_rank=1, supported_index=True, composite_only=False,
                           best_chunk_id="a#0", best_doc_id="a", best_score=0.9)
    return replace(base, **changes)


def causes(query: QueryCase, thresholds: Thresholds = T) -> list[str]:
    return [d.cause for d in diagnose(query, thresholds)]


def rows(query: QueryCase, cause: Cause, thresholds: Thresholds = T) -> list[Diagnosis]:
    found = [d for d in diagnose(query, thresholds) if d.cause == cause]
    for row in found:
        json.dumps(row.evidence)  # every evidence dict is plain JSON, no default= needed
    return found


# the registry --------------------------------------------------------------------------
def test_one_rule_per_cause_one_line_each_naming_its_thresholds() -> None:
    assert list(RULES) == list(CAUSES) == list(get_args(Cause))
    assert all(text and "\n" not in text and len(text) < 200 for text in RULES.values())
    named = {"vocabulary_mismatch": "low_term_overlap", "scattered": "scatter_limit",
             "crowded_out": "duplicate_jaccard", "drifted": "drift_overlap", "slow": "slow_ms"}
    for cause, threshold in named.items():
        assert threshold in RULES[cause]
    assert "crowded_share" in RULES["crowded_out"]
    every = " ".join(RULES.values())
    assert all(f.name in every for f in fields(Thresholds))


def test_thresholds_take_the_settings_defaults_and_values() -> None:
    """The settings own each default: a threshold never re-declares one."""
    defaults = AuditSettings.model_construct()
    assert Thresholds() == Thresholds.from_settings(defaults)
    settings = AuditSettings.model_construct(diagnose_k=3, slow_ms=20.0, crowded_share=0.7)
    assert Thresholds.from_settings(settings) == Thresholds(k=3, slow_ms=20.0,
                                                            crowded_share=0.7)


# each cause, and its near miss ---------------------------------------------------------
def test_not_indexed() -> None:
    (row,) = rows(case(targets=["x#0", "a#0"], missing_targets=["x#0"]), "not_indexed")
    assert row.target_id == "x#0" and row.evidence["missing_ids"] == ["x#0"]
    assert causes(case(targets=["a#0"])) == []  # present and found at rank 1


def test_ranked_below_k() -> None:
    (row,) = rows(case(targets=["d#0"]), "ranked_below_k")
    assert row.target_id == "d#0"
    assert row.evidence["rank"] == 4 and row.evidence["score_gap"] == pytest.approx(1.0)
    assert row.evidence["explain"] is None  # the embedded index has no _explain
    assert causes(case(targets=["c#0"])) == []  # rank 3 = k: not a miss
    # at document level, ranks count documents (first occurrence), not chunks
    doc_hits = hits("a#0", "a#1", "b#0", "b#1", "c#0", "d#0")
    (row,) = rows(case(hits=doc_hits, level="doc", targets=["d"]), "ranked_below_k")
    assert row.evidence["rank"] == 4 and row.evidence["chunk_id"] == "d#0"
    assert causes(case(hits=doc_hits, level="doc", targets=["c"])) == []


def test_not_retrieved_with_term_overlap_and_dense_similarity() -> None:
    dense = [*hits("a#0", "b#0", "c#0", "d#0", "e#0", "f#0")[:6],
             Hit("z#0", "z", 7, 0.42)]
    query = case(targets=["z#0"], query_terms=["cat", "purr"],
                 target_terms={"z#0": ["cat", "sleep"]}, ablations={"dense": dense})
    (row,) = rows(query, "not_retrieved")
    assert row.evidence["term_overlap"] == 0.5
    assert row.evidence["dense_similarity"] == 0.42 and row.evidence["dense_rank"] == 7
    # within depth it is ranked_below_k instead
    assert "not_retrieved" not in causes(case(targets=["e#0"]))


def test_vocabulary_mismatch_by_ablation() -> None:
    bm25 = hits("a#0", "b#0", "c#0")
    query = case(targets=["z#0"], ablations={"bm25": bm25, "dense": hits("a#0", "b#0", "z#0")})
    (row,) = rows(query, "vocabulary_mismatch")
    assert row.evidence["by"] == ["ablation"] and row.evidence["dense_rank"] == 3
    assert row.evidence["bm25_rank"] is None
    near = case(targets=["z#0"], ablations={"bm25": bm25,
                                            "dense": hits("a#0", "b#0", "c#0", "z#0")})
    assert "vocabulary_mismatch" not in causes(near)  # dense rank 4 > k


def test_vocabulary_mismatch_by_term_overlap() -> None:
    terms = ["alpha", "bravo", "delta", "echo", "golf"]
    query = case(targets=["z#0"], query_terms=terms, target_terms={"z#0": ["hotel", "india"]})
    (row,) = rows(query, "vocabulary_mismatch")
    assert row.evidence["by"] == ["term_overlap"] and row.evidence["term_overlap"] == 0.0
    assert row.evidence["missing_terms"] == terms
    edge = replace(query, target_terms={"z#0": ["alpha", "hotel"]})  # 1/5 = low_term_overlap
    assert "vocabulary_mismatch" not in causes(edge)
    assert "vocabulary_mismatch" in causes(edge, replace(T, low_term_overlap=0.21))
    lexical_found = replace(query, ablations={"bm25": hits("z#0")})  # bm25 finds it: no
    assert "vocabulary_mismatch" not in causes(lexical_found)


def test_semantic_miss() -> None:
    bm25 = hits("a#0", "z#0")
    query = case(targets=["z#0"], ablations={"bm25": bm25,
                                              "dense": hits("a#0", "b#0", "c#0", "z#0")})
    (row,) = rows(query, "semantic_miss")
    assert (row.evidence["bm25_rank"], row.evidence["dense_rank"]) == (2, 4)
    assert row.evidence["dense_similarity"] == 7.0 and row.evidence["dense_similarity_at_k"] == 8
    near = replace(query, ablations={"bm25": bm25, "dense": hits("a#0", "b#0", "z#0")})
    assert "semantic_miss" not in causes(near)


def test_ann_loss() -> None:
    ablations = {"exact": hits("z#0"), "dense": hits("a#0", "b#0", "c#0", "z#0")}
    query = case(mode="dense", targets=["z#0"], ablations=ablations)
    (row,) = rows(query, "ann_loss")
    assert (row.evidence["exact_rank"], row.evidence["dense_rank"]) == (1, 4)
    assert "ann_loss" not in causes(replace(query, mode="bm25"))  # the run uses no kNN
    lost_by_both = {**ablations, "exact": hits("a#0", "b#0", "c#0", "z#0")}
    assert "ann_loss" not in causes(replace(query, ablations=lost_by_both))


def test_fusion_loss() -> None:
    ablations = {"bm25": hits("a#0", "b#0", "z#0"), "dense": hits("a#0")}
    query = case(mode="hybrid", targets=["z#0"], ablations=ablations)
    (row,) = rows(query, "fusion_loss")
    assert row.evidence == {"bm25_rank": 3, "dense_rank": None, "replayed_rank": None}
    assert "fusion_loss" not in causes(replace(query, mode="bm25"))
    deeper = {"bm25": hits("a#0", "b#0", "c#0", "z#0"), "dense": hits("a#0")}
    assert "fusion_loss" not in causes(replace(query, ablations=deeper))


def test_filtered_out() -> None:
    query = case(mode="template", targets=["z#0"], ablations={"unfiltered": hits("z#0")})
    (row,) = rows(query, "filtered_out")
    assert row.evidence == {"unfiltered_rank": 1, "replayed_rank": None}
    assert "filtered_out" not in causes(replace(query, mode="hybrid"))
    deeper = {"unfiltered": hits("a#0", "b#0", "c#0", "z#0")}
    assert "filtered_out" not in causes(replace(query, ablations=deeper))


def test_scattered() -> None:
    support = [sentence(0), sentence(1, best_chunk_id="b#2", best_doc_id="b")]
    (row,) = rows(case(scatter_chunks=4, scatter_docs=2, sentences=support), "scattered")
    assert row.evidence["gatherable"] is False and row.evidence["docs"] == ["a", "b"]
    assert row.evidence["chunks"] == ["a#0", "b#2"]
    assert causes(case(scatter_chunks=3, scatter_docs=3)) == []  # = k, = scatter_limit
    assert causes(case(scatter_chunks=3, scatter_docs=4)) == ["scattered"]


def test_chunk_split_and_unsupported_answer() -> None:
    split = sentence(1, supported_index=False, composite_only=True, replayed_rank=None)
    alone = sentence(2, supported_index=False, composite_only=False, replayed_rank=None)
    query = case(sentences=[sentence(0), split, alone])
    (row,) = rows(query, "chunk_split")
    assert [s["index"] for s in row.evidence["sentences"]] == [1]
    (row,) = rows(query, "unsupported_answer")
    assert [s["index"] for s in row.evidence["sentences"]] == [2]
    assert row.evidence["share"] == pytest.approx(1 / 3)
    assert causes(case(sentences=[sentence(0), split])) == ["chunk_split"]
    assert causes(case(sentences=[sentence(0)])) == []


def test_conflicting_evidence_names_the_passage_and_both_values() -> None:
    wrong = ConflictRef("b#0", "b", "replayed", 2, "number", "9,984", "9,312")
    deep = ConflictRef("e#0", "e", "replayed", 5, "date", "1999", "2001")
    contradicted = sentence(1, supported_index=False, replayed_rank=None, conflicts=[wrong])
    query = case(sentences=[sentence(0), contradicted])
    (row,) = rows(query, "conflicting_evidence")
    assert row.target_id is None and row.evidence["k"] == 3
    (found,) = row.evidence["sentences"]
    assert found["index"] == 1 and found["contradicted"] is True
    assert found["conflicts"] == [{"chunk_id": "b#0", "doc_id": "b", "origin": "replayed",
                                   "rank": 2, "kind": "number", "answer": "9,984",
                                   "passage": "9,312"}]
    # only the context at k counts: a conflicting chunk at rank 5 is not in it
    beyond = sentence(1, supported_index=False, replayed_rank=None, conflicts=[deep])
    assert "conflicting_evidence" not in causes(case(sentences=[sentence(0), beyond]))
    assert rows(case(sentences=[sentence(0), beyond]), "conflicting_evidence",
                replace(T, k=5))[0].evidence["sentences"][0]["conflicts"][0]["passage"] == "2001"
    # support elsewhere in the index: the context still holds the other value
    elsewhere = sentence(1, supported_index=True, replayed_rank=None, conflicts=[wrong])
    (row,) = rows(case(sentences=[elsewhere]), "conflicting_evidence")
    assert row.evidence["sentences"][0]["contradicted"] is False


def test_crowded_out_by_one_document() -> None:
    k4 = replace(T, k=4)
    crowded = case(hits=hits("big#0", "big#1", "x#0", "y#0"), targets=["z#0"])
    (row,) = rows(crowded, "crowded_out", k4)
    assert row.evidence["dominant_doc"] == {"doc_id": "big", "chunks": 2, "share": 0.5}
    assert row.evidence["missed"] == ["z#0"]
    assert "crowded_out" not in causes(replace(crowded, hits=hits("big#0", "w#0", "x#0", "y#0")),
                                       k4)
    assert causes(replace(crowded, targets=["big#0"]), k4) == []  # nothing missed


def test_crowded_out_by_near_duplicates_at_the_jaccard_edge() -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
             "juliet"]
    texts = {"u#0": " ".join(words), "v#0": " ".join(words[:9]), "w#0": "kilo lima mike"}
    query = case(hits=hits("u#0", "v#0", "w#0"), level="doc", targets=["z"], texts=texts)
    (row,) = rows(query, "crowded_out")  # Jaccard 9/10 = duplicate_jaccard: duplicates
    assert row.evidence["duplicate_groups"] == [["u#0", "v#0"]]
    assert row.evidence["share"] == pytest.approx(2 / 3) and "dominant_doc" not in row.evidence
    apart = {**texts, "v#0": " ".join(words[:8])}  # 8/10 < 0.9
    assert "crowded_out" not in causes(replace(query, texts=apart))
    assert duplicate_groups({"a": "", "b": ""}, 0.9) == []  # no content words: no evidence


def test_drifted() -> None:
    (row,) = rows(case(served=["x#0", "y#0", "z#0"]), "drifted")
    assert row.evidence["overlap"] == 0.0 and row.evidence["rbo"] == 0.0
    assert row.evidence["served_top_k"] == ["x#0", "y#0", "z#0"]
    assert row.evidence["replayed_top_k"] == ["a#0", "b#0", "c#0"]
    edge = case(served=["a#0", "b#0", "x#0", "y#0"])  # overlap@4 = 0.5 = drift_overlap
    assert causes(edge, replace(T, k=4)) == []
    assert causes(case(served=None)) == []


def test_empty_result_leaves_room_only_for_not_indexed() -> None:
    empty = case(status="empty", hits=[], targets=["a#0", "x#0"], missing_targets=["x#0"],
                 replay_latency_ms=5000.0, served=["a#0"], scatter_docs=9)
    assert causes(empty) == ["not_indexed", "empty_result"]
    (row,) = rows(empty, "empty_result")
    assert row.evidence == {"mode": "bm25", "replay_latency_ms": 5000.0, "served": 1}
    assert causes(replace(empty, status="ok")) == ["not_indexed", "empty_result"]  # no hits
    assert causes(case()) == []


def test_slow() -> None:
    assert causes(case(replay_latency_ms=1000.0)) == []  # on budget is not over it
    (row,) = rows(case(replay_latency_ms=1000.5), "slow")
    assert row.evidence["over"] == ["replay"] and row.evidence["slow_ms"] == 1000.0
    (row,) = rows(case(replay_latency_ms=None, served_latency_ms=2000), "slow")
    assert row.evidence["over"] == ["served"]


def test_errors_get_no_cause() -> None:
    failing = case(status="error", hits=[], targets=["x#0"], missing_targets=["x#0"],
                   replay_latency_ms=9999.0)
    assert diagnose(failing, T) == []


def test_several_causes_at_once_in_cause_order() -> None:
    query = case(
        mode="hybrid", hits=hits("a#0", "b#0", "c#0", "d#0", "z#0"), targets=["z#0", "x#0"],
        missing_targets=["x#0"], served=["p#0", "q#0", "r#0"], replay_latency_ms=1500.0,
        ablations={"bm25": hits("z#0"), "dense": hits("a#0", "b#0", "c#0", "d#0", "z#0")},
    )
    found = diagnose(query, T)
    assert [(d.cause, d.target_id) for d in found] == [
        ("not_indexed", "x#0"), ("ranked_below_k", "z#0"), ("semantic_miss", "z#0"),
        ("fusion_loss", "z#0"), ("drifted", None), ("slow", None)]
    assert all(d.query_id == "q1" for d in found)
    json.dumps([d.evidence for d in found])


# gather on real indices ----------------------------------------------------------------
CORPUS = [  # chunk_id, doc_id, position, title, text
    ("cats#0", "cats", 0, "Cats", "a cat purrs on the warm windowsill"),
    ("cats#1", "cats", 1, "Cats", "kittens chase a ball of yarn"),
    ("dogs#0", "dogs", 0, "Dogs", "the dog barks at the mail carrier"),
    ("fish#0", "fish", 0, "Fish", "goldfish swim slowly in a glass bowl"),
    ("birds#0", "birds", 0, "Birds", "a parrot can imitate human speech"),
]


def corpus() -> list[Chunk]:
    return [Chunk(chunk_id=c, doc_id=d, position=p, title=t, text=x)
            for c, d, p, t, x in CORPUS]


def replayed(backend: Any, mode: str, level: str, queries: dict[str, tuple[str, list[str]]],
             depth: int = 10) -> list[QueryCase]:
    """Cases as the audit builds them: query id → (query, targets)."""
    texts = [query for query, _ in queries.values()]
    results = backend.search_many(texts, mode, depth)
    return [case(query_id=qid, query=query, targets=targets, hits=result.hits, mode=mode,
                 level=level, depth=depth, status="ok" if result.hits else "empty")
            for (qid, (query, targets)), result in zip(queries.items(), results, strict=True)]


def test_gather_on_the_embedded_index(tmp_path: Path) -> None:
    backend = EmbeddedBackend.build(corpus(), tmp_path / "ix", load_encoder("hash"))
    k1 = Thresholds(k=1)
    cases = replayed(backend, "hybrid", "chunk", {
        "miss": ("kittens chasing yarn", ["dogs#0"]),  # no word in common with the target
        "found": ("goldfish bowl", ["fish#0"]),
    })
    docs = replayed(backend, "hybrid", "doc", {"doc": ("parrot speech cat", ["cats"])})
    given = [*cases, *docs]
    miss, found, doc = [c.with_findings(f) for c, f in zip(
        given, gather(given, backend, "hybrid", k1, template=False), strict=True)]
    assert cases[0].ablations == {}  # the input is read, not changed
    assert set(miss.ablations) == {"bm25", "dense", "exact"} and miss.notes == {}
    assert miss.ablations["exact"] == miss.ablations["dense"]  # exact cosine already
    assert miss.ablations["bm25"][0].chunk_id == "cats#1"
    assert miss.query_terms == ["kitten", "chase", "yarn"]  # bm25s tokens, Snowball stems
    assert miss.target_terms == {"dogs#0": ["dog", "dog", "bark", "mail", "carrier"]}  # title+text
    assert miss.texts["dogs#0"] == "Dogs the dog barks at the mail carrier"
    assert set(miss.texts) == {"dogs#0", miss.hits[0].chunk_id}  # target + the top-k chunk
    assert miss.explain == {}  # no _explain in-process
    assert found.ablations == {} and found.query_terms == []  # nothing missed: nothing done
    assert doc.hits[0].doc_id == "birds"
    assert set(doc.target_terms["cats"]) >= {"cat", "purr", "kitten", "yarn"}  # both chunks
    labels = {d.cause for d in diagnose(miss, k1)}
    assert {"vocabulary_mismatch"} <= labels and labels & {"ranked_below_k", "not_retrieved"}
    (vocabulary,) = [d for d in diagnose(miss, k1) if d.cause == "vocabulary_mismatch"]
    assert vocabulary.evidence["missing_terms"] == ["kitten", "chase", "yarn"]


def test_gather_notes_what_it_cannot_get(tmp_path: Path) -> None:
    """An index without vectors: the dense ablation is noted, not raised; rules stay quiet."""
    backend = EmbeddedBackend.build(corpus(), tmp_path / "ix", None)
    (query,) = replayed(backend, "bm25", "chunk", {"q": ("kittens yarn", ["dogs#0"])})
    (findings,) = gather([query], backend, "bm25", Thresholds(k=1), template=False)
    query = query.with_findings(findings)
    assert set(query.ablations) == {"bm25"} and query.ablations["bm25"] == query.hits
    assert "no embeddings" in query.notes["dense"]
    assert "semantic_miss" not in causes(query, Thresholds(k=1))


def test_one_typo_copies_of_a_short_text_are_near_duplicates() -> None:
    text = "the harbour town hosts a famous surf contest every spring with big waves"
    typo = text.replace("famous", "famuos")
    groups = duplicate_groups({"a": text, "b": typo, "c": "an unrelated note on tea"}, 0.9)
    assert ["a", "b"] in groups
