"""OpenInference / OTLP spans read as a query log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.backends.embedded import EmbeddedBackend
from auditor.logs import LoadCounts, read_log
from auditor.records import LogRecord, QuarantineEntry
from auditor.spans import span_layout
from tests.conftest import FIXTURES
from tests.oracle.test_interop import _audit

SCIFACT = FIXTURES / "scifact"
SPANS = FIXTURES / "openinference_spans.json"


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
    assert first.served and first.served[0].score == 8.7318 and first.served[0].rank == 1
    assert first.logged_at is not None and first.logged_at.isoformat() == \
        "2026-11-01T00:00:00.005000+00:00"
    assert first.served_latency_ms == 138.0
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
    assert [(i.id, i.rank, i.score) for i in first.served or []] == [
        ("d1", 1, 0.9), ("7", 2, 0.5)]
    assert first.served_latency_ms == 250.0 and first.metadata["trace_id"] == "t1"
    assert (second.query_id, second.query) == ("0xs3", "statins and dementia")
    assert second.metadata["service"] == "rag-api" and second.served_latency_ms == 40.0
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
                                                (4, "served_latency_ms")]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e30, "9" * 40])
def test_unusable_span_times_are_quarantined_not_raised(tmp_path: Path, value: object) -> None:
    bad_span = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t1", "span_id": "s9"},
                "start_time": value}
    llm = {**PHOENIX_LLM, "end_time": value}  # the answer pass must not fail either
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in (PHOENIX_RETRIEVER, llm, bad_span)) + "\n")
    records, bad, counts = _read(path)
    assert [r.query_id for r in records] == ["s1"] and records[0].answer
    assert [(b.line, b.field) for b in bad] == [(3, "startTimeUnixNano")]
    assert "time" in bad[0].reason and counts.skipped == 1


def test_every_bad_span_gets_its_own_position(tmp_path: Path) -> None:
    """Resumed runs deduplicate quarantine entries by (source, line): none may share one."""
    no_query = {**PHOENIX_RETRIEVER, "context": {"trace_id": "t2", "span_id": "s2"},
                "attributes": {**PHOENIX_RETRIEVER["attributes"], "input.value": None}}
    no_id = {**no_query, "context": {}, "attributes": {**no_query["attributes"],
                                                     "input.value": "q"}}
    document = tmp_path / "spans.json"
    document.write_text(json.dumps([PHOENIX_RETRIEVER, 5, no_query, "x", no_id], indent=2))
    _, bad, _ = _read(document)
    assert [(b.line, b.field) for b in bad] == [
        (2, "(record)"), (3, "input.value"), (4, "(record)"), (5, "spanId")]
    # Lines holding several spans (a batched OTLP file exporter) number spans, not lines.
    lines = tmp_path / "spans.jsonl"
    lines.write_text(json.dumps([PHOENIX_RETRIEVER, no_query]) + "\n\n"
                     + json.dumps([no_id, 7]) + "\n")
    assert span_layout(lines) == "lines"
    _, bad, counts = _read(lines)
    assert [(b.line, b.field) for b in bad] == [(2, "input.value"), (3, "spanId"),
                                                (4, "(record)")]
    assert "span 2 on line 1" in bad[0].reason and counts.read == 4


def test_a_document_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads, whole = json.loads, []

    def counting(text: str | bytes, **kwargs: object) -> object:
        whole.append(len(text) > 1000)
        return loads(text, **kwargs)

    minified = tmp_path / "minified.json"
    minified.write_text(json.dumps(json.loads(SPANS.read_text())))
    for path in (SPANS, minified):
        monkeypatch.setattr(json, "loads", counting)
        records, _, _ = _read(path)
        monkeypatch.undo()
        assert len(records) == 3 and span_layout(path) == "document"
        assert whole.count(True) == 1, path
        whole.clear()


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


@pytest.mark.parametrize(("export", "quarantined"), [
    ("openinference_spans.json", "retrieval.documents.1.document.score"),
    ("otel_genai_spans.json", "gen_ai.retrieval.query.text"),
])
def test_audit_runs_on_the_span_export(tmp_path: Path, scifact_index: EmbeddedBackend,
                                       export: str, quarantined: str) -> None:
    # The spans' query ids are span ids: judgments for them map from the SciFact qrels.
    span_of = {"3": "b7ad6b7169203331", "42": "53995c3f42cd8ad8", "5": "eee19b7ec3c1b174"}
    qrels = [line.split("\t") for line in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]]
    (tmp_path / "qrels.tsv").write_text("".join(
        f"{span_of[q]} 0 {d} {g.strip()}\n" for q, d, g in qrels if q in span_of))
    store, run_id = _audit(tmp_path, scifact_index, FIXTURES / export, tmp_path / "qrels.tsv")
    run = store.run(run_id)
    assert run["counts"]["accepted"] == 3 and run["counts"]["quarantined"] == 1
    assert [q["field"] for q in store.quarantine(run_id)] == [quarantined]
    trace = store.query_trace(run_id, "b7ad6b7169203331")
    assert trace["result"]["answer"].startswith("We propose")
    assert json.loads(trace["result"]["metadata"])["service"] == "scifact-rag"
    assert trace["sentences"]  # the LLM span's answer was traced to its sources
    assert trace["metrics"]["recall@100"] == 1.0
    assert "served_recall@10" in trace["metrics"]  # the span's documents were what was served


# Issue 10: hostile span files are quarantined span by span, or one InputError sentence.


def _span(span_id: str, **attributes: object) -> dict:
    return {**PHOENIX_RETRIEVER, "context": {"trace_id": "t1", "span_id": span_id},
            "attributes": {**PHOENIX_RETRIEVER["attributes"], **attributes}}


def test_hostile_spans_on_lines_are_quarantined_with_their_field(tmp_path: Path) -> None:
    deep = _span("s3", note="x")
    deep["attributes"]["note"] = json.loads("[" * 200 + "]" * 200)
    nan_score = _span("s4", **{"retrieval.documents": [{"document.id": "d1",
                                                        "document.score": float("nan")}]})
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([
        json.dumps(PHOENIX_RETRIEVER).encode(),
        json.dumps(_span("s2", **{"input.value": "caf\u00e9"})).encode().replace(
            b"caf\\u00e9", b"caf\xe9"),
        json.dumps(deep).encode(),
        json.dumps(nan_score).encode(),
        b"[" * 10_000 + b"]" * 10_000,
    ]) + b"\n")
    assert span_layout(path) == "lines"
    records, bad, counts = _read(path)
    assert [r.query_id for r in records] == ["s1"]
    assert [(b.line, b.field) for b in bad] == [
        (2, "(record)"), (3, "(record)"), (4, "served.0.score"), (5, "(record)")]
    assert "invalid UTF-8" in bad[0].reason and "nested more than 64" in bad[1].reason
    assert "finite" in bad[2].reason and "nested too deeply" in bad[3].reason
    assert counts.read == counts.accepted + counts.quarantined + counts.blank + counts.skipped


def test_unreadable_span_documents_are_one_input_error_sentence(tmp_path: Path) -> None:
    from auditor.errors import InputError

    path = tmp_path / "spans.json"
    text = json.dumps({"resourceSpans": []}, indent=2)
    path.write_bytes(text.encode().replace(b"[]", b'["\xff"]'))
    with pytest.raises(InputError, match=r"spans\.json:2: invalid UTF-8: byte 0xff"):
        list(read_log(path))
    path.write_text('{\n "resourceSpans": ' + "[" * 10_000 + "]" * 10_000 + "}")
    with pytest.raises(InputError, match=r"spans\.json: not readable JSON \(nested more"):
        list(read_log(path))


def test_otlp_values_of_the_wrong_shape_are_read_as_nothing(tmp_path: Path) -> None:
    def attribute(key: str, value: dict) -> dict:
        return {"key": key, "value": value}

    span = {"traceId": "t", "spanId": "s", "attributes": [
        attribute("openinference.span.kind", {"stringValue": "RETRIEVER"}),
        attribute("input.value", {"stringValue": "q"}),
        attribute("x", {"kvlistValue": 1}), attribute("y", {"arrayValue": [1]})]}
    path = tmp_path / "spans.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [
        {"spans": [span]}]}]}))
    records, bad, _ = _read(path)
    assert [r.query_id for r in records] == ["s"] and not bad


# Issue 15: OpenTelemetry GenAI retrieval spans, read next to OpenInference's.

GENAI = FIXTURES / "otel_genai_spans.json"


def test_genai_export_gives_the_records_the_openinference_export_gives() -> None:
    """The two fixtures hold the same traces under the two conventions' names."""
    records, bad, counts = _read(GENAI)
    expected, _, _ = _read(SPANS)
    assert span_layout(GENAI) == "document"
    assert [(r.query_id, r.query, r.served, r.answer, r.logged_at, r.served_latency_ms)
            for r in records] == [
        (r.query_id, r.query, r.served, r.answer, r.logged_at, r.served_latency_ms)
        for r in expected]
    assert records[0].metadata == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                   "span_name": "retrieval scifact-kb",
                                   "service": "scifact-rag", "session_id": "conv-acme-1",
                                   "data_source": "scifact-kb"}
    # invoke_agent, embeddings and chat are not retrieval spans (chat lends its answer)
    assert counts.read == 7 and counts.skipped == 3 and counts.accepted == 3
    (entry,) = bad
    assert (entry.line, entry.field) == (7, "gen_ai.retrieval.query.text")
    assert "content capture" in entry.reason


def _genai_span(span_id: str, **attributes: object) -> dict:
    return {"context": {"trace_id": "t1", "span_id": span_id}, "name": "retrieval kb",
            "attributes": {"gen_ai.operation.name": "retrieval", **attributes}}


@pytest.mark.parametrize(("documents", "field"), [
    ([{"score": 1.0}], "gen_ai.retrieval.documents.0.id"),
    ([{"id": "d1", "score": 1.0}, {"id": "d2", "score": "high"}],
     "gen_ai.retrieval.documents.1.score"),
    ("[{\"id\": ", "gen_ai.retrieval.documents"),
    (7, "gen_ai.retrieval.documents"),
])
def test_bad_genai_retrieval_spans_are_quarantined_with_their_field(
        tmp_path: Path, documents: object, field: str) -> None:
    good = _genai_span("s1", **{"gen_ai.retrieval.query.text": "statins",
                                "gen_ai.retrieval.documents": [{"id": "d1", "score": 2.5}]})
    bad_span = _genai_span("s2", **{"gen_ai.retrieval.query.text": "statins",
                                    "gen_ai.retrieval.documents": documents})
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in (good, bad_span)) + "\n")
    records, bad, _ = _read(path)
    assert [(r.query_id, [(i.id, i.rank, i.score) for i in r.served or []])
            for r in records] == [("s1", [("d1", 1, 2.5)])]
    assert [(b.line, b.field) for b in bad] == [(2, field)]


def test_genai_answer_is_the_last_output_message_text(tmp_path: Path) -> None:
    """Only text parts count (a tool call part is not the answer); a JSON-encoded
    ``gen_ai.output.messages`` reads the same as a structured one."""
    messages = [{"role": "assistant", "parts": [{"type": "text", "content": "draft"}]},
                {"role": "assistant", "parts": [
                    {"type": "tool_call", "name": "search", "arguments": {"q": "x"}},
                    {"type": "text", "content": "Statins "}, {"type": "text", "content": "help."}]}]
    for encoded in (messages, json.dumps(messages)):
        chat = {"context": {"trace_id": "t1", "span_id": "c1"}, "name": "chat m",
                "attributes": {"gen_ai.operation.name": "chat",
                               "gen_ai.output.messages": encoded}}
        retrieval = _genai_span("s1", **{"gen_ai.retrieval.query.text": "statins",
                                         "gen_ai.retrieval.documents": []})
        path = tmp_path / "spans.jsonl"
        path.write_text("\n".join(json.dumps(s) for s in (retrieval, chat)) + "\n")
        (record,), bad, _ = _read(path)
        assert not bad and record.answer == "Statins help." and record.served == []
