"""The answer trace on a chunked index: served document ids expand to their chunks."""

from __future__ import annotations

from pathlib import Path

from auditor.backends.embedded import EmbeddedBackend
from auditor.embed import load_encoder
from auditor.evidence import SupportScorer
from auditor.records import Chunk, LogRecord
from auditor.replay import Replayer
from auditor.trace import Tracer, coverage, index_coverage


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
