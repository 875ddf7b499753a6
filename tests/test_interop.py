"""TREC export checked by an independent evaluator, and OpenInference spans read as a log.

The export's acceptance check: a run exported from the store and evaluated by
``ir_measures`` (pytrec_eval and its MS MARCO evaluator underneath) reproduces the stored
per-query metrics to 1e-9. Queries that got no hits are absent from a TREC run (the oracle
skips them) and queries without a judged-relevant document are NaN for us: both are left
out of the comparison, and counted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from auditor.audit import run_audit
from auditor.backends.embedded import EmbeddedBackend
from auditor.config import load_settings
from auditor.interop import ExportError, export_trec, span_layout
from auditor.logs import LoadCounts, read_log, read_qrels, read_trec_run
from auditor.metrics import Qrels, evaluate, metrics_for
from auditor.records import LogRecord, QuarantineEntry
from auditor.store import Store, StoreError

from .conftest import FIXTURES

ir_measures = pytest.importorskip("ir_measures")

SCIFACT = FIXTURES / "scifact"
SPANS = FIXTURES / "openinference_spans.json"
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
        judged = con.execute("SELECT query_id, doc_id, relevance FROM judgments WHERE run_id = ?",
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
    qrels = [(q.query_id, q.doc_id, q.relevance) for q in read_qrels(tmp_path / "qrels.trec")]
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
            "relevance": pa.array([j[2] for j in judgments], pa.int32())}),
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
    assert export_trec(store, "r1", tmp_path / "doc", level="doc") == (1, 0)


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


# OpenInference spans --------------------------------------------------------------------
def _read(path: Path) -> tuple[list[LogRecord], list[QuarantineEntry], LoadCounts]:
    counts = LoadCounts()
    items = list(read_log(path, counts))
    records = [i for i in items if isinstance(i, LogRecord)]
    return records, [i for i in items if isinstance(i, QuarantineEntry)], counts


def test_otlp_export_becomes_log_records() -> None:
    records, bad, counts = _read(SPANS)
    assert span_layout(SPANS) == "document"
    assert [r.query_id for r in records] == ["b7ad6b7169203331", "53995c3f42cd8ad8",
                                             "eee19b7ec3c1b174"]
    first = records[0]
    assert first.query.startswith("1,000 genomes project")
    assert first.served_ids()[:3] == ["2739854", "23389795", "14717500"]
    assert first.retrieved and first.retrieved[0].score == 8.7318 and first.retrieved[0].rank == 1
    assert first.timestamp is not None and first.timestamp.isoformat() == \
        "2026-11-01T00:00:00.005000+00:00"
    assert first.latency_ms == 138.0
    assert first.answer and first.answer.startswith("We propose as an alternative")
    assert first.metadata == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                              "span_name": "retrieve", "service": "scifact-rag",
                              "session_id": "sess-acme-1", "user_id": "u-17"}
    assert records[1].answer is None  # no LLM span in that trace
    assert counts.read == 6 and counts.skipped == 2 and counts.accepted == 3
    assert counts.accepted + counts.quarantined + counts.blank + counts.skipped == counts.read
    (entry,) = bad
    assert (entry.source, entry.line, entry.field) == (
        str(SPANS), 6, "retrieval.documents.1.document.score")
    assert "span 6 (rerank)" in entry.reason and "'high'" in entry.reason
    assert '"spanId": "ae1f2b3c4d5e6f70"' in entry.raw


def test_otlp_file_exporter_lines_give_line_numbers(tmp_path: Path) -> None:
    """The OTel collector's file exporter writes one TracesData object per line."""
    export = json.loads(SPANS.read_text())
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    lines = []
    for span in spans:
        part = {"resourceSpans": [{**export["resourceSpans"][0],
                                   "scopeSpans": [{"scope": {}, "spans": [span]}]}]}
        lines.append(json.dumps(part))
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(lines[:3] + ["", "{not json"] + lines[3:]) + "\n")
    records, bad, counts = _read(path)
    assert span_layout(path) == "lines"
    assert len(records) == 3 and records[0].answer  # the LLM span on a later line still counts
    assert [(b.line, b.field) for b in bad] == [(5, "(record)"),
                                                (8, "retrieval.documents.1.document.score")]
    assert counts.blank == 0 and counts.skipped == 2  # span readers skip blank lines


PHOENIX_RETRIEVER = {
    "name": "retrieve", "span_kind": "RETRIEVER", "parent_id": None,
    "start_time": "2026-11-01T00:00:00.000000+00:00",
    "end_time": "2026-11-01T00:00:00.250000+00:00",
    "context": {"trace_id": "t1", "span_id": "s1"},
    "attributes": {
        "openinference.span.kind": "RETRIEVER", "input.value": "what is BRCA1?",
        "retrieval.documents": [
            {"document.id": "d1", "document.score": 0.9, "document.content": "BRCA1 is..."},
            {"document.id": 7, "document.score": 0.5},
        ],
    },
}
PHOENIX_LLM = {
    "name": "llm", "context": {"trace_id": "t1", "span_id": "s2"},
    "start_time": "2026-11-01T00:00:00.300000Z", "end_time": "2026-11-01T00:00:01Z",
    "attributes": {"openinference": {"span": {"kind": "LLM"}},
                   "llm": {"output_messages": [{"message": {"role": "assistant",
                                                            "content": "A tumour suppressor."}}]},
                   "output": {"value": "{\"raw\": true}", "mime_type": "application/json"}},
}
NESTED_RETRIEVER = {  # nested attribute dicts, OTel ConsoleSpanExporter-like ids
    "name": "search", "context": {"trace_id": "0xt2", "span_id": "0xs3"},
    "start_time": "2026-11-01T00:05:00Z", "end_time": "2026-11-01T00:05:00.040Z",
    "resource": {"attributes": {"service.name": "rag-api"}},
    "attributes": {"openinference": {"span": {"kind": "RETRIEVER"}},
                   "input": {"value": "{\"query\": \"statins and dementia\"}",
                             "mime_type": "application/json"},
                   "retrieval": {"documents": [{"document": {"id": "d9", "score": 3}}]}},
}


@pytest.mark.parametrize("layout", ["ndjson", "array", "phoenix-rest"])
def test_phoenix_style_spans_with_nested_attributes(tmp_path: Path, layout: str) -> None:
    spans = [PHOENIX_RETRIEVER, PHOENIX_LLM, NESTED_RETRIEVER]
    path = tmp_path / "spans.json"
    if layout == "ndjson":
        path.write_text("\n".join(json.dumps(s) for s in spans) + "\n")
    elif layout == "array":
        path.write_text(json.dumps(spans, indent=2))
    else:
        path.write_text(json.dumps({"data": spans, "next_cursor": None}))
    records, bad, counts = _read(path)
    assert not bad and counts.skipped == 1
    first, second = records
    assert (first.query_id, first.query, first.answer) == ("s1", "what is BRCA1?",
                                                           "A tumour suppressor.")
    assert [(i.id, i.rank, i.score) for i in first.retrieved or []] == [
        ("d1", 1, 0.9), ("7", 2, 0.5)]
    assert first.latency_ms == 250.0 and first.metadata["trace_id"] == "t1"
    assert (second.query_id, second.query) == ("0xs3", "statins and dementia")
    assert second.metadata["service"] == "rag-api" and second.latency_ms == 40.0
    assert second.answer is None  # another trace


@pytest.mark.parametrize(("change", "field"), [
    ({"input.value": None}, "input.value"),
    ({"input.value": "   "}, "input.value"),
    ({"retrieval.documents": [{"document.score": 1.0}]}, "retrieval.documents.0.document.id"),
    ({"retrieval.documents": [{"document.id": "d", "document.score": True}]},
     "retrieval.documents.0.document.score"),
    ({"retrieval.documents": "not json"}, "retrieval.documents"),
    ({"retrieval.documents": 5}, "retrieval.documents"),
])
def test_bad_retriever_spans_are_quarantined_with_line_and_field(
        tmp_path: Path, change: dict, field: str) -> None:
    bad_span = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t9", "span_id": "s9"},
                "attributes": {**PHOENIX_RETRIEVER["attributes"], **change}}
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in (PHOENIX_RETRIEVER, bad_span)) + "\n")
    records, bad, _ = _read(path)
    assert [r.query_id for r in records] == ["s1"]
    assert [(b.source, b.line, b.field) for b in bad] == [(str(path), 2, field)]


def test_bad_times_and_duplicate_spans_are_quarantined(tmp_path: Path) -> None:
    late = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t1", "span_id": "s2"},
            "start_time": "yesterday"}
    backwards = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t1", "span_id": "s3"},
                 "end_time": "2025-01-01T00:00:00Z"}
    json_docs = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t1", "span_id": "s4"},
                 "attributes": {**PHOENIX_RETRIEVER["attributes"], "retrieval.documents":
                                json.dumps([{"document.id": "d1", "document.score": 1}])}}
    spans = [PHOENIX_RETRIEVER, PHOENIX_RETRIEVER, late, backwards, json_docs]
    path = tmp_path / "spans.ndjson"
    path.write_text("\n".join(json.dumps(s) for s in spans) + "\n")
    records, bad, _ = _read(path)
    assert [r.query_id for r in records] == ["s1", "s4"]
    assert records[1].served_ids() == ["d1"]  # a JSON-encoded document list is read too
    assert [(b.line, b.field) for b in bad] == [(2, "query_id"), (3, "startTimeUnixNano"),
                                                (4, "latency_ms")]


def test_ordinary_logs_are_not_taken_for_spans(tmp_path: Path) -> None:
    for path in (SCIFACT / "log.jsonl", FIXTURES / "bad_log.jsonl",
                 FIXTURES / "hotpotqa" / "log.jsonl"):
        assert span_layout(path) is None
    record = {"query_id": "1", "query": "q", "metadata": {"context": {"span_id": "x"}},
              "attributes": {"openinference.span.kind": "RETRIEVER"}}
    path = tmp_path / "log.json"
    path.write_text(json.dumps(record) + "\n")
    assert span_layout(path) is None
    records, _, counts = _read(path)
    assert records[0].metadata["attributes"] == {"openinference.span.kind": "RETRIEVER"}
    path.write_text("{\n  \"query_id\": \"1\"\n}\n")  # pretty-printed, no span marker
    assert span_layout(path) is None
    path.write_text("")
    assert span_layout(path) is None


def test_audit_runs_on_the_span_export(tmp_path: Path, scifact_index: EmbeddedBackend) -> None:
    # The spans' query ids are span ids: judgments for them map from the SciFact qrels.
    span_of = {"3": "b7ad6b7169203331", "42": "53995c3f42cd8ad8", "5": "eee19b7ec3c1b174"}
    qrels = [line.split("\t") for line in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]]
    (tmp_path / "qrels.tsv").write_text("".join(
        f"{span_of[q]} 0 {d} {g.strip()}\n" for q, d, g in qrels if q in span_of))
    store, run_id = _audit(tmp_path, scifact_index, SPANS, tmp_path / "qrels.tsv")
    run = store.run(run_id)
    assert run["counts"]["accepted"] == 3 and run["counts"]["quarantined"] == 1
    assert [q["field"] for q in store.quarantine(run_id)] == [
        "retrieval.documents.1.document.score"]
    trace = store.query_trace(run_id, "b7ad6b7169203331")
    assert trace["result"]["answer"].startswith("We propose")
    assert json.loads(trace["result"]["metadata"])["service"] == "scifact-rag"
    assert trace["sentences"]  # the LLM span's answer was traced to its sources
    assert trace["metrics"]["recall@100"] == 1.0
    assert "served_recall@10" in trace["metrics"]  # the span's documents were what was served
