"""Property-based fuzzing of every input reader (issue 10).

Whatever bytes a log (JSONL, CSV, Parquet, spans) or a qrels file holds, a reader either
yields records and quarantine entries, or raises one of the project's own errors with a
one-line message; and read = accepted + quarantined + blank + skipped always holds.
Deterministic (``derandomize``) and fast: a few hundred files of a few lines each.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.decode import GRADE_MAX, GRADE_MIN
from auditor.errors import AuditorError
from auditor.judgments import read_qrels
from auditor.logs import LoadCounts, read_log
from auditor.records import LogRecord, Qrel, QuarantineEntry

FUZZ = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a hostile or careless exporter writes.
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1000, 1001, 10**23, 10**29, 2**63, 1e400, 1e-400]),
)
texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
ids = st.one_of(st.text(min_size=1, max_size=6), st.text(min_size=1, max_size=6), st.integers(),
                st.sampled_from(["q1", "", " "]))
queries = st.text(min_size=1, max_size=20).filter(str.strip)


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The intended kind of value most of the time, anything now and then."""
    return st.one_of(*[strategy] * 6, json_values)


retrieved_items = st.fixed_dictionaries(
    {"id": _maybe(st.text(max_size=6))},
    optional={"rank": _maybe(st.integers(min_value=-2, max_value=10**12)), "score": numbers},
)
records = st.fixed_dictionaries(
    {"query_id": ids, "query": _maybe(queries)},
    optional={
        "served": _maybe(st.lists(retrieved_items, max_size=3)),
        "judgments": _maybe(st.dictionaries(texts, numbers, max_size=3)),
        "served_latency_ms": numbers,
        "logged_at": _maybe(st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", "9999-12-31"])),
        # the names before issue 11, alone or alongside today's
        "retrieved": _maybe(st.lists(retrieved_items, max_size=3)),
        "relevant": _maybe(st.dictionaries(texts, numbers, max_size=3)),
        "latency_ms": numbers,
        "timestamp": _maybe(st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", "9999-12-31"])),
        "answer": _maybe(texts),
        "cited": _maybe(st.lists(texts, max_size=2)),
        "metadata": json_values,
        "tenant": json_values,
    },
)
HOSTILE_LINES = [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"query_id": "a", "query": "x", "metadata": {"m": ' + b"[" * 300 + b"]" * 300 + b"}}",
    b'{"query_id": "a", "query": "x", "relevant": {"d": 100000000000000000000000000000}}',
    b'{"query_id": "a", "query": "x", "latency_ms": Infinity, "extra": NaN}',
    b'{"query_id": ' + b"9" * 5000 + b', "query": "x"}',
    b'{"query_id": "a", "query": "x\\ud800"}',
    b'{"query_id": "a", "query": "caf\xe9"}',
    b'{"query_id": "a", "query": "x", "m": ' + b"[" * 900 + b"\"\xff\"" + b"]" * 900 + b"}",
    b"\xef\xbb\xbf{}",
    b"\x00\xff\xfe",
]
garbage_lines = st.one_of(st.binary(max_size=24), st.sampled_from(HOSTILE_LINES),
                          st.sampled_from([b"", b"   ", b"\r"]))


def _record_line(record: dict) -> bytes:
    return json.dumps(record).encode("utf-8", "surrogatepass")


log_lines = st.lists(st.one_of(records.map(_record_line), records.map(_record_line),
                               garbage_lines), max_size=6)


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def _check_log(path: Path) -> None:
    """The readers' contract, checked on whatever ``path`` holds."""
    counts = LoadCounts()
    try:
        items = list(read_log(path, counts))
    except AuditorError as exc:
        _one_sentence(str(exc), path)
        return
    assert counts.read == counts.accepted + counts.quarantined + counts.blank + counts.skipped
    accepted = [item for item in items if isinstance(item, LogRecord)]
    bad = [item for item in items if isinstance(item, QuarantineEntry)]
    assert len(accepted) + len(bad) == len(items)
    assert (len(accepted), len(bad)) == (counts.accepted, counts.quarantined)
    for entry in bad:
        assert entry.source == str(path) and entry.line >= 1
        assert entry.field and entry.reason and "at at" not in entry.reason
    for record in accepted:
        _accepted_record_is_sound(record)


def _accepted_record_is_sound(record: LogRecord) -> None:
    """What the store and the metrics need of an accepted record."""
    for text in (record.query_id, record.query, record.answer or ""):
        text.encode("utf-8")  # no lone surrogates
    json.dumps(record.metadata, allow_nan=False)  # finite, and not nested past recursion
    assert record.served_latency_ms is None or math.isfinite(record.served_latency_ms)
    for item in record.served or []:
        assert item.score is None or math.isfinite(item.score)
    assert all(GRADE_MIN <= g <= GRADE_MAX for g in (record.judgments or {}).values())


def _one_sentence(message: str, path: Path) -> None:
    assert message and "\n" not in message and "at at" not in message
    assert str(path) in message


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(lines=log_lines, bom=st.booleans(), suffix=st.sampled_from([".jsonl", ".json"]))
def test_jsonl_logs(fuzz_dir: Path, lines: list[bytes], bom: bool, suffix: str) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines)
    _check_log(_write(fuzz_dir, "log" + suffix, data))


grades = st.one_of(numbers.map(str), st.sampled_from(["inf", "-inf", "nan", "1e400", "1.5",
                                                      "10" * 12, "x", ""]), texts)
qrels_lines = st.one_of(
    st.tuples(texts, st.sampled_from(["0", "Q0"]), texts, grades).map(" ".join),
    st.tuples(texts, texts, grades).map("\t".join),
    st.sampled_from(["query-id\tcorpus-id\tscore", "", "  "]),
).map(lambda line: line.encode("utf-8", "surrogatepass"))


@FUZZ
@given(lines=st.lists(st.one_of(qrels_lines, qrels_lines, garbage_lines), max_size=6),
       bom=st.booleans())
def test_qrels(fuzz_dir: Path, lines: list[bytes], bom: bool) -> None:
    path = _write(fuzz_dir, "qrels.txt", (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines))
    counts = LoadCounts()
    items = list(read_qrels(path, counts))
    assert counts.read == counts.accepted + counts.quarantined + counts.blank + counts.skipped
    judged = [item for item in items if isinstance(item, Qrel)]
    assert len(judged) == counts.accepted and len(items) - len(judged) == counts.quarantined
    assert all(GRADE_MIN <= q.grade <= GRADE_MAX and q.query_id and q.doc_id
               for q in judged)
    assert all(e.field and "at at" not in e.reason for e in items if isinstance(
        e, QuarantineEntry))


CSV_COLUMNS = ["query_id", "query", "served", "judgments", "served_latency_ms", "metadata",
               "cited", "logged_at", "tenant", "", "retrieved", "relevant", "latency_ms",
               "timestamp"]
csv_cells = st.one_of(queries, queries, texts, numbers.map(str), json_values.map(json.dumps),
                      st.sampled_from(["inf", "NaN", "x" * 140_000, '"', "\n", "\r\n"]))


@FUZZ
@given(header=st.one_of(*[st.permutations(CSV_COLUMNS[2:]).map(
    lambda cs: ["query_id", "query", *cs[:3]])] * 3,
                        st.lists(st.sampled_from(CSV_COLUMNS), max_size=6)),
       rows=st.lists(st.lists(csv_cells, max_size=7), max_size=5),
       noise=st.lists(garbage_lines, max_size=2), bom=st.booleans())
def test_csv_logs(fuzz_dir: Path, header: list[str], rows: list[list[str]],
                  noise: list[bytes], bom: bool) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    data = (b"\xef\xbb\xbf" if bom else b"") + data + b"\n".join(noise)
    _check_log(_write(fuzz_dir, "log.csv", data))


parquet_tables = st.integers(min_value=0, max_value=4).flatmap(lambda n: st.fixed_dictionaries({
    "query_id": st.lists(st.one_of(st.none(), *[st.text(min_size=1, max_size=6)] * 6),
                         min_size=n, max_size=n),
    "query": st.lists(st.one_of(st.none(), *[queries] * 6), min_size=n, max_size=n),
    "latency_ms": st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n),
    "retrieved": st.lists(st.one_of(st.none(), st.lists(st.fixed_dictionaries({
        "id": texts, "rank": st.integers(-5, 2**40), "score": st.floats()}), max_size=2)),
        min_size=n, max_size=n),
    "tenant": st.one_of(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n),
                        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                                 min_size=n, max_size=n)),
}))


@FUZZ
@given(columns=parquet_tables, damage=st.one_of(
    st.none(), st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("flip"), st.integers(0, 10_000)), st.just(("empty", 0))))
def test_parquet_logs(fuzz_dir: Path, columns: dict, damage: tuple[str, int] | None) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    data = buffer.getvalue()
    if damage is not None:
        kind, at = damage
        at %= max(len(data), 1)
        data = {"truncate": data[:at], "empty": b"",
                "flip": data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]}[kind]
    _check_log(_write(fuzz_dir, "log.parquet", data))


span_ids = st.one_of(st.none(), *[st.text(min_size=1, max_size=6)] * 4, st.integers())
times = st.one_of(*[st.none()] * 4, numbers, st.sampled_from(["2026-11-01T00:00:00Z", "x", "-1"]),
                  st.integers(-(2**70), 2**70).map(str),
                  st.integers(1.7e18, 1.8e18).map(str))
documents = _maybe(st.lists(st.fixed_dictionaries(
    {}, optional={"document.id": _maybe(st.text(max_size=4)), "document.score": numbers,
                  "id": texts}), max_size=3))
phoenix_spans = st.fixed_dictionaries(
    {"context": st.fixed_dictionaries({"span_id": span_ids}, optional={"trace_id": span_ids}),
     "attributes": st.fixed_dictionaries(
         {"openinference.span.kind": st.sampled_from(["RETRIEVER", "RETRIEVER", "LLM", "X"]),
          "input.value": _maybe(queries)},
         optional={"retrieval.documents": documents,
                   "input.mime_type": st.just("application/json"),
                   "llm.output_messages": json_values, "output.value": json_values})},
    optional={"name": json_values, "start_time": times, "end_time": times,
              "span_kind": st.sampled_from(["RETRIEVER", "LLM"])},
)
any_values = st.recursive(
    st.one_of(st.fixed_dictionaries({"stringValue": texts}),
              st.fixed_dictionaries({"intValue": st.one_of(texts, st.integers())}),
              st.fixed_dictionaries({"doubleValue": numbers}), json_values),
    lambda inner: st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries(
        {"values": st.lists(inner, max_size=2)})}), max_leaves=4)
random_attributes = st.lists(st.fixed_dictionaries({"key": st.sampled_from(
    ["openinference.span.kind", "input.value", "retrieval.documents.0.document.id",
     "retrieval.documents.1.document.score", "service.name", "x"]), "value": any_values}),
    max_size=4)
retriever_attributes = st.tuples(queries, texts, numbers, random_attributes).map(
    lambda t: [{"key": "openinference.span.kind", "value": {"stringValue": "RETRIEVER"}},
               {"key": "input.value", "value": {"stringValue": t[0]}},
               {"key": "retrieval.documents.0.document.id", "value": {"stringValue": t[1]}},
               {"key": "retrieval.documents.0.document.score", "value": {"doubleValue": t[2]}},
               *t[3]])
otlp_attributes = st.one_of(retriever_attributes, retriever_attributes, random_attributes)
otlp_exports = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries({
    "resource": _maybe(st.fixed_dictionaries({"attributes": otlp_attributes})),
    "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(_maybe(
        st.fixed_dictionaries({"traceId": span_ids, "spanId": span_ids,
                               "startTimeUnixNano": times, "endTimeUnixNano": times,
                               "attributes": otlp_attributes})), max_size=3)}),
        min_size=1, max_size=2),
}), max_size=2)})


@FUZZ
@given(units=st.lists(st.one_of(phoenix_spans, otlp_exports,
                                st.lists(phoenix_spans, min_size=1, max_size=3)),
                      min_size=1, max_size=4),
       layout=st.sampled_from(["lines", "document", "pretty"]),
       noise=st.lists(garbage_lines, max_size=2))
def test_span_logs(fuzz_dir: Path, units: list, layout: str, noise: list[bytes]) -> None:
    def dumps(value: object, indent: int | None = None) -> bytes:
        return json.dumps(value, indent=indent).encode("utf-8", "surrogatepass")

    if layout == "lines":
        data = b"\n".join([dumps(unit) for unit in units] + noise)
    else:
        data = dumps(units, indent=2 if layout == "pretty" else None)
        data = b"\n".join([data, *noise]) if noise and layout == "pretty" else data
    _check_log(_write(fuzz_dir, "spans.jsonl", data))
