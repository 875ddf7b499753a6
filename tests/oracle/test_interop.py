"""TREC export checked by an independent evaluator.

The export's acceptance check: a run exported from the store and evaluated by
``ir_measures`` (pytrec_eval and its MS MARCO evaluator underneath) reproduces the stored
per-query metrics to 1e-9. Queries that got no hits are absent from a TREC run (the oracle
skips them) and queries without a judged-relevant document are NaN for us: both are left
out of the comparison, and counted.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from auditor.audit import run_audit
from auditor.backends.embedded import EmbeddedBackend
from auditor.config import load_settings
from auditor.interop import ExportError, export_trec
from auditor.judgments import read_qrels, read_trec_run
from auditor.metrics import Qrels, evaluate, metrics_for
from auditor.store import Store, StoreError
from tests.conftest import FIXTURES

ir_measures = pytest.importorskip("ir_measures")

SCIFACT = FIXTURES / "scifact"
TOLERANCE = 1e-9
ORACLE = {  # our metric -> the ir_measures measure that computes it
    "ndcg@10": ir_measures.nDCG @ 10,
    "recall@10": ir_measures.R @ 10,
    "recall@100": ir_measures.R @ 100,
    "precision@10": ir_measures.P @ 10,
    "mrr@10": ir_measures.RR @ 10,
    "hit@10": ir_measures.Success @ 10,
}


def _audit(tmp: Path, backend: EmbeddedBackend, log: Path, qrels: Path | None) -> tuple[Store, str]:
    settings = load_settings(None, log=log, qrels=qrels, store=tmp / "a.duckdb",
                             encoder="hash", mode="bm25", index=tmp / "idx")
    run_id, status = run_audit(settings, backend=backend)
    assert status == "complete"
    return Store(settings.store), run_id


@pytest.fixture(scope="module")
def scifact_run(tmp_path_factory: pytest.TempPathFactory, scifact_index: EmbeddedBackend
                ) -> tuple[Store, str]:
    return _audit(tmp_path_factory.mktemp("trec"), scifact_index, SCIFACT / "log.jsonl",
                  SCIFACT / "qrels.tsv")


def _stored(store: Store, run_id: str) -> dict[str, dict[str, float]]:
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT metric, query_id, value FROM metrics WHERE run_id = ? AND "
                           "value IS NOT NULL", [run_id]).fetchall()
    out: dict[str, dict[str, float]] = {}
    for metric, query_id, value in rows:
        out.setdefault(metric, {})[query_id] = value
    return out


# TREC export ----------------------------------------------------------------------------
def test_exported_run_reproduces_stored_metrics_with_ir_measures(
        scifact_run: tuple[Store, str], tmp_path: Path) -> None:
    store, run_id = scifact_run
    run_lines, qrels_lines = export_trec(store, run_id, tmp_path / "run.trec",
                                         tmp_path / "qrels.trec")
    assert run_lines > 0 and qrels_lines > 0
    qrels = list(ir_measures.read_trec_qrels(str(tmp_path / "qrels.trec")))
    run = list(ir_measures.read_trec_run(str(tmp_path / "run.trec")))
    oracle: dict[str, dict[str, float]] = {}
    for result in ir_measures.iter_calc(list(ORACLE.values()), qrels, run):
        oracle.setdefault(str(result.measure), {})[result.query_id] = result.value
    stored = _stored(store, run_id)
    in_run = {r.query_id for r in run}
    for name, measure in ORACLE.items():
        ours = {q: v for q, v in stored[name].items() if q in in_run}
        theirs = {q: v for q, v in oracle[str(measure)].items() if q in ours}
        assert len(ours) >= 40 and theirs.keys() == ours.keys(), name
        for query_id, value in ours.items():
            assert math.isclose(value, theirs[query_id], abs_tol=TOLERANCE), (name, query_id)
        mean = sum(ours.values()) / len(ours)
        assert math.isclose(mean, sum(theirs.values()) / len(theirs), abs_tol=TOLERANCE)


def test_export_round_trips_through_our_readers(scifact_run: tuple[Store, str],
                                                tmp_path: Path) -> None:
    store, run_id = scifact_run
    export_trec(store, run_id, tmp_path / "run.trec", tmp_path / "qrels.trec", tag="bm25")
    with store.connect(read_only=True) as con:
        hits = con.execute("SELECT query_id, doc_id FROM hits WHERE run_id = ? ORDER BY seq, rank",
                           [run_id]).fetchall()
        judged = con.execute("SELECT query_id, doc_id, grade FROM judgments WHERE run_id = ?",
                             [run_id]).fetchall()
    expected: dict[str, list[str]] = {}
    for query_id, doc_id in hits:
        if doc_id not in expected.setdefault(query_id, []):
            expected[query_id].append(doc_id)
    read: dict[str, list[tuple[int, str]]] = {}
    for query_id, item in read_trec_run(tmp_path / "run.trec"):
        read.setdefault(query_id, []).append((item.rank or 0, item.id))
    assert {q: [d for _, d in items] for q, items in read.items()} == expected
    assert all([r for r, _ in items] == list(range(1, len(items) + 1)) for items in read.values())
    assert all(line.split()[5] == "bm25" for line in (tmp_path / "run.trec").open())
    qrels = [(q.query_id, q.doc_id, q.grade) for q in read_qrels(tmp_path / "qrels.trec")]
    assert sorted(qrels) == sorted(judged)


def _synthetic_run(path: Path, hits: list[tuple[str, int, str, str, float]],
                   judgments: list[tuple[str, str, int]], level: str = "doc") -> Store:
    """A store holding one run ``r1`` with the given (query, rank, chunk, doc, score) hits."""
    store = Store(path)
    store.create_run("r1", backend="embedded", mode="bm25", level=level, config={},
                     fingerprint={}, code_version="test")
    seq = {q: i for i, q in enumerate(dict.fromkeys(h[0] for h in hits))}
    store.append({
        "hits": pa.table({
            "run_id": ["r1"] * len(hits), "seq": [seq[h[0]] for h in hits],
            "query_id": [h[0] for h in hits], "rank": pa.array([h[1] for h in hits], pa.int32()),
            "chunk_id": [h[2] for h in hits], "doc_id": [h[3] for h in hits],
            "score": [h[4] for h in hits]}),
        "judgments": pa.table({
            "run_id": ["r1"] * len(judgments), "query_id": [j[0] for j in judgments],
            "doc_id": [j[1] for j in judgments],
            "grade": pa.array([j[2] for j in judgments], pa.int32())}),
    })
    return store


def test_ties_and_chunk_duplicates_keep_our_ranking_for_trec_tools(tmp_path: Path) -> None:
    # q1 ties at equal scores in an order trec_eval would reverse (it breaks ties by doc id
    # descending); q2 repeats a document through a second chunk; q3's scores differ only
    # below single precision (trec_eval holds scores as C floats: a tie again); q4 has
    # strictly falling scores that must be written unchanged, at full precision.
    hits = [
        ("q1", 1, "a#0", "a", 2.0), ("q1", 2, "b#0", "b", 2.0), ("q1", 3, "c#0", "c", 1.0),
        ("q2", 1, "d#0", "d", 3.0), ("q2", 2, "d#1", "d", 2.5), ("q2", 3, "e#0", "e", 2.0),
        ("q3", 1, "f#0", "f", 0.30000000000000004), ("q3", 2, "g#0", "g", 0.3),
        ("q4", 1, "h#0", "h", 0.30000000000000004), ("q4", 2, "i#0", "i", 0.1),
    ]
    judgments = [("q1", "a", 2), ("q1", "c", 1), ("q2", "e", 1), ("q3", "g", 1), ("q3", "x", 0),
                 ("q4", "i", 1)]
    store = _synthetic_run(tmp_path / "s.duckdb", hits, judgments)
    assert export_trec(store, "r1", tmp_path / "run", tmp_path / "qrels") == (9, 6)
    lines = [line.split() for line in (tmp_path / "run").read_text().splitlines()]
    assert [(q, d, int(r)) for q, _, d, r, _, _ in lines] == [
        ("q1", "a", 1), ("q1", "b", 2), ("q1", "c", 3), ("q2", "d", 1), ("q2", "e", 2),
        ("q3", "f", 1), ("q3", "g", 2), ("q4", "h", 1), ("q4", "i", 2)]
    scores = {(q, d): float(s) for q, _, d, _, s, _ in lines}
    assert scores[("q1", "a")] > scores[("q1", "b")] > scores[("q1", "c")]  # rank-derived
    assert (scores[("q2", "d")], scores[("q2", "e")]) == (3.0, 2.0)  # original, best chunk
    assert scores[("q3", "f")] > scores[("q3", "g")] == 1.0  # rank-derived
    assert scores[("q4", "h")] == 0.30000000000000004  # full precision survives
    queries = ["q1", "q2", "q3", "q4"]
    ranked = {"q1": ["a", "b", "c"], "q2": ["d", "e"], "q3": ["f", "g"], "q4": ["h", "i"]}
    ours = evaluate(queries, [q for q in queries for _ in ranked[q]],
                    [d for q in queries for d in ranked[q]], Qrels.from_rows(judgments),
                    metrics_for([1, 2, 3], ["ndcg", "mrr", "recall"]))
    qrels = list(ir_measures.read_trec_qrels(str(tmp_path / "qrels")))
    run = list(ir_measures.read_trec_run(str(tmp_path / "run")))
    measures = [ir_measures.nDCG @ 2, ir_measures.RR @ 3, ir_measures.R @ 1]
    theirs = {(str(m.measure), m.query_id): m.value
              for m in ir_measures.iter_calc(measures, qrels, run)}
    for name, measure in zip(("ndcg@2", "mrr@3", "recall@1"), measures, strict=True):
        for i, query_id in enumerate(queries):
            assert math.isclose(ours[name][i], theirs[(str(measure), query_id)],
                                abs_tol=TOLERANCE), (name, query_id)


def test_chunk_level_export_writes_chunk_ids(tmp_path: Path) -> None:
    hits = [("q1", 1, "d#0", "d", 3.0), ("q1", 2, "d#1", "d", 2.0)]
    store = _synthetic_run(tmp_path / "s.duckdb", hits, [("q1", "d#1", 1)], level="chunk")
    assert export_trec(store, "r1", tmp_path / "run") == (2, 0)
    assert [line.split()[2] for line in (tmp_path / "run").open()] == ["d#0", "d#1"]


def test_export_errors_name_the_problem(tmp_path: Path) -> None:
    store = _synthetic_run(tmp_path / "s.duckdb", [("q 1", 1, "a", "a", 1.0)], [])
    with pytest.raises(StoreError, match="no run 'nope'"):
        export_trec(store, "nope", tmp_path / "run")
    with pytest.raises(ExportError, match="whitespace"):
        export_trec(store, "r1", tmp_path / "run")
    with pytest.raises(ExportError, match="one word"):
        export_trec(store, "r1", tmp_path / "run", tag="two words")
    with pytest.raises(StoreError, match="no results store"):
        export_trec(Store(tmp_path / "missing.duckdb"), "r1", tmp_path / "run")


def test_qrels_export_rejects_judgment_ids_with_whitespace(tmp_path: Path) -> None:
    store = _synthetic_run(tmp_path / "s.duckdb", [("q1", 1, "a", "a", 1.0)], [("q1", "a b", 1)])
    assert export_trec(store, "r1", tmp_path / "run") == (1, 0)  # judgments not written
    with pytest.raises(ExportError, match="'a b' in its judgments holds whitespace"):
        export_trec(store, "r1", tmp_path / "run", tmp_path / "qrels")
    assert not (tmp_path / "qrels").exists()
