"""The answer trace on a chunked index: served document ids expand to their chunks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from auditor.backends.embedded import EmbeddedBackend
from auditor.embed import load_encoder
from auditor.evidence import SupportScorer
from auditor.metrics.per_query import BatchResult, trace_tables
from auditor.records import Chunk, LogRecord
from auditor.replay import Replayer
from auditor.store import Store
from auditor.trace import ConflictRef, Tracer, coverage, index_coverage


def test_served_documents_expand_to_chunks_and_support_is_traced(tmp_path: Path) -> None:
    chunks = [
        Chunk(chunk_id="whales#0", doc_id="whales", position=0,
              text="Blue whales are the largest animals that ever lived on Earth."),
        Chunk(chunk_id="whales#1", doc_id="whales", position=1,
              text="Blue whales feed almost entirely on tiny krill in cold oceans."),
        Chunk(chunk_id="tea#0", doc_id="tea", position=0,
              text="Green tea leaves are steamed soon after the harvest in Japan."),
    ]
    encoder = load_encoder("hash")
    backend = EmbeddedBackend.build(chunks, tmp_path / "ix", encoder)
    tracer = Tracer(backend, SupportScorer(encoder), ks=[1, 3])
    assert tracer._served_chunks({"q": ["whales", "tea#0"], "none": []}) == {
        "q": ["whales#0", "whales#1", "tea#0"], "none": []}
    record = LogRecord(
        query_id="q", query="what do blue whales eat",
        served=[{"id": "whales", "rank": 1}],
        answer="Blue whales feed almost entirely on tiny krill in cold oceans. "
               "Their songs were first recorded by a submarine crew near Bermuda in 1952.",
    )
    rows = Replayer(backend, "bm25", 10).replay([record])
    trace = tracer.trace(rows)["q"]
    first, second = trace.sentences
    assert first.status == "supported" and first.best_chunk_id == "whales#1"
    assert {s.origin for s in first.supports} >= {"served", "replayed"}
    assert second.status == "ungrounded"
    assert coverage(trace, None) == 0.5 and index_coverage(trace) == 0.5
    assert trace.evidence_docs() == ["whales"]
    assert trace.doc_cover.size == 1


def test_a_served_chunk_with_another_figure_makes_the_sentence_contradicted(
        tmp_path: Path) -> None:
    chunks = [
        Chunk(chunk_id="milton#0", doc_id="milton", position=0,
              text="Milton is a town in Pike County. As of the 2010 census, the county "
                   "population was 9,312."),
        Chunk(chunk_id="tea#0", doc_id="tea", position=0,
              text="Green tea leaves are steamed soon after the harvest in Japan."),
    ]
    encoder = load_encoder("hash")
    backend = EmbeddedBackend.build(chunks, tmp_path / "ix", encoder)
    tracer = Tracer(backend, SupportScorer(encoder), ks=[1, 3])
    record = LogRecord(
        query_id="q", query="population of Pike County in 2010",
        served=[{"id": "milton#0", "rank": 1}],
        answer="As of the 2010 census, the county population was 9,984. "
               "Green tea leaves are steamed soon after the harvest in Japan.",
    )
    trace = tracer.trace(Replayer(backend, "bm25", 10).replay([record]))["q"]
    wrong, right = trace.sentences
    assert wrong.status == "contradicted" and not wrong.supports
    assert ConflictRef("milton#0", "milton", "served", 1, "number", "9,984", "9,312") \
        in wrong.conflicts
    assert right.status == "retrievable_not_retrieved" and right.conflicts == []
    assert index_coverage(trace) == 0.5 and trace.evidence_docs() == ["tea"]
    assert "milton#0" in trace.passages  # the conflicting passage is kept to be shown

    # stored with the run and read back, both values as written
    store = Store(tmp_path / "audit.duckdb")
    store.create_run("r", backend="embedded", mode="bm25", level="doc", config={},
                     fingerprint={}, code_version="test")
    batch = BatchResult(0, [], {}, {}, {"q": trace}, [])
    query = pa.Table.from_pylist([{"run_id": "r", "seq": 0, "query_id": "q",
                                   "query": record.query, "status": "ok", "n_hits": 0}])
    store.append({"query_results": query, **trace_tables("r", batch)})
    stored = store.query_trace("r", "q")
    assert [s["status"] for s in stored["sentences"]] == ["contradicted",
                                                          "retrievable_not_retrieved"]
    assert {"idx": wrong.index, "origin": "served", "rank": 1, "chunk_id": "milton#0",
            "doc_id": "milton", "kind": "number", "answer_value": "9,984",
            "passage_value": "9,312"} in stored["conflicts"]
    assert {c["idx"] for c in stored["conflicts"]} == {wrong.index}
    assert store.sentence_counts("r") == {"contradicted": 1, "retrievable_not_retrieved": 1}
