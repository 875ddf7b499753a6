"""Reading logs, qrels, runs and corpora: nothing is lost, bad records say where and why."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from auditor.corpus_reader import read_corpus, split_words
from auditor.errors import InputError
from auditor.judgments import read_qrels, read_trec_run
from auditor.logs import LoadCounts, read_log
from auditor.records import OLD_LOG_FIELDS, LogRecord, Qrel, QuarantineEntry
from tests.conftest import FIXTURES

GOOD = {"query_id": "q1", "query": "what is a cat"}


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _split(items):
    good = [item for item in items if isinstance(item, LogRecord)]
    bad = [item for item in items if isinstance(item, QuarantineEntry)]
    return good, bad


def test_bundled_bad_log_quarantines_each_bad_line_with_line_and_reason() -> None:
    counts = LoadCounts()
    good, bad = _split(list(read_log(FIXTURES / "bad_log.jsonl", counts)))
    assert counts.read == 13
    assert counts.accepted + counts.quarantined + counts.blank == counts.read
    assert len(good) == counts.accepted == 8
    assert {entry.line for entry in bad} == {3, 5, 8, 10, 12}
    by_line = {entry.line: entry for entry in bad}
    assert "invalid JSON" in by_line[3].reason
    assert by_line[5].field == "query"
    assert by_line[8].field == "retrieved"
    assert by_line[10].field == "query_id" and "duplicate" in by_line[10].reason
    assert by_line[12].field == "latency_ms"
    assert all(entry.source.endswith("bad_log.jsonl") and entry.raw for entry in bad)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"query_id": "a"}', "query"),
        ('{"query": "x"}', "query_id"),
        ('{"query_id": "a", "query": "   "}', "query"),
        ('{"query_id": true, "query": "x"}', "query_id"),
        ('{"query_id": "a", "query": "x", "retrieved": [{"rank": 1}]}', "retrieved.0.id"),
        ('{"query_id": "a", "query": "x", "retrieved": [{"id": "d", "rank": 0}]}',
         "retrieved.0.rank"),
        ('{"query_id": "a", "query": "x", "relevant": {"d": "high"}}', "relevant.d"),
        ('{"query_id": "a", "query": "x", "timestamp": "yesterday"}', "timestamp"),
        ('{"query_id": "a", "query": "x", "metadata": [1]}', "metadata"),
        ("[1, 2]", "(record)"),
        ('{"query_id": "a", "query": ', "(record)"),
    ],
)
def test_each_kind_of_bad_record_names_its_field(tmp_path: Path, line: str, field: str) -> None:
    path = _write_jsonl(tmp_path / "log.jsonl", [json.dumps(GOOD), line])
    good, bad = _split(list(read_log(path)))
    assert [record.query_id for record in good] == ["q1"]
    assert len(bad) == 1
    assert bad[0].line == 2
    assert bad[0].field == field


def test_unknown_fields_are_kept_in_metadata(tmp_path: Path) -> None:
    record = {**GOOD, "user": "u7", "metadata": {"tenant": "acme"}, "query_id": 12}
    path = _write_jsonl(tmp_path / "log.jsonl", [json.dumps(record)])
    (parsed,) = list(read_log(path))
    assert isinstance(parsed, LogRecord)
    assert parsed.query_id == "12"
    assert parsed.metadata == {"tenant": "acme", "user": "u7"}


def test_blank_lines_are_counted_not_quarantined(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "log.jsonl", [json.dumps(GOOD), "", "   "])
    counts = LoadCounts()
    items = list(read_log(path, counts))
    assert len(items) == 1
    assert (counts.read, counts.accepted, counts.blank, counts.quarantined) == (3, 1, 2, 0)


def test_served_ids_follow_rank_when_ranks_are_given() -> None:
    record = LogRecord.model_validate(
        {**GOOD, "retrieved": [{"id": "b", "rank": 2}, {"id": "a", "rank": 1}]}
    )
    assert record.served_ids() == ["a", "b"]


def test_csv_log_parses_json_columns_and_quarantines_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "query", "retrieved", "latency_ms", "tenant"])
        writer.writerow(["q1", "cats", json.dumps([{"id": "d1", "rank": 1}]), "12.5", "acme"])
        writer.writerow(["q2", "dogs", "not json", "", ""])
        writer.writerow(["q3", "", "", "", ""])
    good, bad = _split(list(read_log(path)))
    assert [record.query_id for record in good] == ["q1"]
    assert good[0].served[0].id == "d1" and good[0].served_latency_ms == 12.5
    assert good[0].metadata == {"tenant": "acme"}
    assert [(entry.line, entry.field) for entry in bad] == [(3, "retrieved"), (4, "query")]


def test_parquet_log_streams_in_batches(tmp_path: Path) -> None:
    table = pa.table(
        {
            "query_id": ["a", "b", "a"],
            "query": ["one", "two", "three"],
            "latency_ms": [1.0, None, 3.0],
        }
    )
    path = tmp_path / "log.parquet"
    pq.write_table(table, path)
    good, bad = _split(list(read_log(path)))
    assert [record.query_id for record in good] == ["a", "b"]
    assert bad[0].line == 3 and "duplicate" in bad[0].reason


def test_beir_directory_is_a_log(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "queries.jsonl",
        [json.dumps({"_id": "7", "text": "claim", "metadata": {"x": 1}})],
    )
    (record,) = list(read_log(tmp_path))
    assert (record.query_id, record.query, record.metadata) == ("7", "claim", {"x": 1})


def test_missing_and_unknown_files_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list(read_log(tmp_path / "nope.jsonl"))
    (tmp_path / "log.txt").write_text("x")
    with pytest.raises(InputError, match="unknown format"):
        list(read_log(tmp_path / "log.txt"))


def test_log_is_streamed_not_loaded(tmp_path: Path) -> None:
    """Memory held while reading stays far below the file's size."""
    path = tmp_path / "big.jsonl"
    answer = "An answer sentence of a realistic length. " * 25
    with path.open("w") as handle:
        for i in range(30_000):
            record = {"query_id": f"q{i}", "query": f"query number {i}", "answer": answer}
            handle.write(json.dumps(record) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in read_log(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 30_000
    # The duplicate-id set is the only thing that grows: ids, not records.
    assert peak < size / 5, (peak, size)


def test_qrels_beir_and_trec_formats(tmp_path: Path) -> None:
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t2\n2\td3\tx\n")
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 d1 1\n1 0 d2 0\nbroken line\n")
    beir_items = list(read_qrels(beir))
    assert beir_items[:2] == [Qrel(query_id="1", doc_id="d1", grade=1),
                              Qrel(query_id="1", doc_id="d2", grade=2)]
    assert isinstance(beir_items[2], QuarantineEntry) and beir_items[2].line == 4
    trec_items = list(read_qrels(trec))
    # a TREC line keeps its iteration column, so an export writes the file back as read
    assert trec_items[1] == Qrel(query_id="1", doc_id="d2", grade=0, iteration="0")
    assert isinstance(trec_items[2], QuarantineEntry) and trec_items[2].line == 3


def test_trec_run_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 d1 1 12.5 bm25\nq1 Q0 d2 2 11 bm25\n")
    rows = list(read_trec_run(path))
    assert [(q, item.id, item.rank, item.score) for q, item in rows] == [
        ("q1", "d1", 1, 12.5), ("q1", "d2", 2, 11.0)
    ]
    path.write_text("q1 d1 1\n")
    with pytest.raises(InputError, match=":1: expected 6 columns"):
        list(read_trec_run(path))


def test_corpus_chunking_keeps_sentences_whole(tmp_path: Path) -> None:
    text = "One two three four. Five six seven. Eight nine ten eleven twelve. Thirteen."
    path = _write_jsonl(tmp_path / "corpus.jsonl", [json.dumps({"_id": "d", "title": "T",
                                                                "text": text})])
    chunks = list(read_corpus(path, chunk_words=7))
    assert [c.chunk_id for c in chunks] == ["d#0", "d#1"]
    assert " ".join(c.text for c in chunks) == text
    assert all(c.doc_id == "d" and c.title == "T" for c in chunks)
    assert split_words("", 5) == [""]
    (whole,) = read_corpus(path)
    assert (whole.chunk_id, whole.doc_id) == ("d", "d")


# Issue 10: every input defect is a quarantine entry naming its field, or one InputError
# sentence naming the file and line; never a traceback, never silently repaired.


def _one_bad(path: Path) -> QuarantineEntry:
    counts = LoadCounts()
    good, bad = _split(list(read_log(path, counts)))
    assert counts.read == counts.accepted + counts.quarantined + counts.blank + counts.skipped
    assert [r.query_id for r in good] == ["q1"] and len(bad) == 1, bad
    assert "at at" not in bad[0].reason
    return bad[0]


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("[" * 10_000 + "]" * 10_000, "(record)", "nested too deeply"),
        ('{"query_id": "a", "query": "x", "metadata": {"m": ' + "[" * 100 + "]" * 100 + "}}",
         "metadata.m", "nested more than 64"),
        ('{"query_id": "a", "query": "x", "relevant": {"d": 100000000000000000000000000000}}',
         "relevant.d", "less than or equal to 1000"),
        ('{"query_id": "a", "query": "x", "relevant": {"d": -1001}}', "relevant.d", "-1000"),
        ('{"query_id": "a", "query": "x", "latency_ms": Infinity}', "latency_ms", "finite"),
        ('{"query_id": "a", "query": "x", "latency_ms": 1e400}', "latency_ms", "finite"),
        ('{"query_id": "a", "query": "x", "retrieved": [{"id": "d", "score": NaN}]}',
         "retrieved.0.score", "finite"),
        ('{"query_id": "a", "query": "x", "tenant": -Infinity}', "tenant", "finite"),
        ('{"query_id": "a", "query": "x", "metadata": {"w": [NaN]}}', "metadata.w.0", "finite"),
        ('{"query_id": "a", "query": "x", "retrieved": [{"id": "d", "rank": 10000000000}]}',
         "retrieved.0.rank", "less than"),
        ('{"query_id": ' + "9" * 5000 + ', "query": "x"}', "(record)", "invalid JSON"),
        ('{"query_id": "a", "query": "x\\ud800"}', "query", "unicode"),
        ('{"query_id": "a", "query": "x', "(record)", "Invalid control character at column 30"),
    ],
)
def test_hostile_records_are_quarantined_naming_the_field(
    tmp_path: Path, line: str, field: str, reason: str
) -> None:
    entry = _one_bad(_write_jsonl(tmp_path / "log.jsonl", [json.dumps(GOOD), line]))
    assert (entry.line, entry.field) == (2, field)
    assert reason in entry.reason


def test_invalid_utf8_is_said_in_the_quarantine_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"query_id": "a", "query": "caf\xe9"}\n')
    entry = _one_bad(path)
    assert (entry.line, entry.field) == (2, "query")
    assert "invalid UTF-8" in entry.reason and "0xe9" in entry.reason


def test_a_byte_order_mark_on_line_one_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    (record,) = list(read_log(path))
    assert isinstance(record, LogRecord) and record.query_id == "q1"


def test_qrels_grades_that_are_not_small_finite_numbers_are_quarantined(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qrels.txt"
    path.write_bytes(b"\xef\xbb\xbfq1 0 d1 1\nq1 0 d2 inf\nq1 0 d3 1e400\n"
                     b"q1 0 d4 100000000000000000000000\nq1 0 d5 nan\nq1 0 d\xff 1\n\n"
                     b"q1 0 d6 2.0\n")
    counts = LoadCounts()
    items = list(read_qrels(path, counts))
    good = [i for i in items if isinstance(i, Qrel)]
    bad = {i.line: i for i in items if isinstance(i, QuarantineEntry)}
    assert [(q.doc_id, q.grade) for q in good] == [("d1", 1), ("d6", 2)]
    assert sorted(bad) == [2, 3, 4, 5, 6]
    assert all(bad[n].field == "grade" for n in (2, 3, 4, 5))
    assert "finite" in bad[2].reason and "outside -1000..1000" in bad[4].reason
    assert "invalid UTF-8" in bad[6].reason
    assert (counts.read, counts.accepted, counts.quarantined, counts.blank) == (8, 2, 5, 1)


def test_inline_grades_within_bounds_reach_the_metrics(tmp_path: Path) -> None:
    from auditor.metrics import Qrels, evaluate, parse_metric

    record = {**GOOD, "relevant": {"d1": 1000, "d2": -1000}}
    (parsed,) = list(read_log(_write_jsonl(tmp_path / "log.jsonl", [json.dumps(record)])))
    assert isinstance(parsed, LogRecord) and parsed.judgments
    qrels = Qrels.from_rows([("q1", d, g) for d, g in parsed.judgments.items()])
    values = evaluate(["q1"], ["q1", "q1"], ["d2", "d1"], qrels, [parse_metric("ndcg@10")])
    assert 0 < values["ndcg@10"][0] < 1


@pytest.mark.parametrize("content", [b"", b"garbage, not parquet" * 10, b"PAR1" + b"\0" * 64])
def test_unreadable_parquet_is_one_input_error_sentence(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        list(read_log(path))
    message = str(caught.value)
    assert message.startswith(f"log file {path} is not a readable Parquet file")
    assert "\n" not in message and "at at" not in message


def test_truncated_parquet_is_one_input_error_sentence(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"query_id": ["a", "b"], "query": ["one", "two"]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="not a readable Parquet file"):
        list(read_log(path))


def test_parquet_non_finite_numbers_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"query_id": ["q1", "b"], "query": ["one", "two"],
                             "latency_ms": [1.0, float("inf")]}), path)
    assert _one_bad(path).field == "latency_ms"


def test_csv_cells_beyond_pythons_default_limit_are_read(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    answer = "word " * 60_000  # 300,000 characters, over csv's 131,072 default
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "query", "answer"])
        writer.writerow(["q1", "cats", answer])
    (record,) = list(read_log(path))
    assert isinstance(record, LogRecord) and record.answer == answer


def test_csv_without_a_query_column_names_the_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("query_id,text\nq1,cats\n")
    with pytest.raises(InputError, match=r"log\.csv:1: the header has no query column"):
        list(read_log(path))


def test_csv_rows_with_bad_bytes_or_extra_cells_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbfquery_id,query,latency_ms\r\nq1,cats,1\r\nq2,caf\xe9,2\r\n"
                     b"q3,dogs,3,surplus\r\n\r\nq4,birds,inf\r\n")
    counts = LoadCounts()
    good, bad = _split(list(read_log(path, counts)))
    assert [r.query_id for r in good] == ["q1"]
    assert [(e.line, e.field) for e in bad] == [(3, "query"), (4, "(record)"), (6, "latency_ms")]
    assert "invalid UTF-8" in bad[0].reason
    assert (counts.read, counts.blank) == (5, 1)


def test_a_csv_cell_over_the_raised_limit_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("query_id,query,answer\nq1,cats," + "x" * (16 * 2**20 + 1) + "\n")
    with pytest.raises(InputError, match=r"log\.csv:2: field larger than field limit"):
        list(read_log(path))



def test_csv_header_message_is_one_line_and_names_the_header_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text('\n"two\nlines",id\nq1,cats\n')
    with pytest.raises(InputError) as caught:
        list(read_log(path))
    assert "\n" not in str(caught.value)
    assert f"{path}:2: the header has no query_id or query column (it names two lines, id)" \
        == str(caught.value).removeprefix("CSV log ")


def _renamed(path: Path, out: Path, names: dict[str, str]) -> Path:
    """``path``'s JSON lines with their top-level keys renamed by ``names``."""
    lines = [json.dumps({names.get(k, k): v for k, v in json.loads(line).items()})
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return _write_jsonl(out, lines)


def test_old_field_names_read_identically(tmp_path: Path) -> None:
    """A log written before issue 11 (timestamp, retrieved, relevant, latency_ms) gives the
    same records as the same log under today's names; none of them lands in metadata."""
    old = _renamed(FIXTURES / "scifact" / "log.jsonl", tmp_path / "old.jsonl", {})
    with old.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"query_id": "inline", "query": "q", "relevant": {"d1": 2},
                              "latency_ms": 12.5, "timestamp": "2026-01-01T00:00:00Z",
                              "retrieved": [{"id": "d1", "rank": 1}]}) + "\n")
    new = _renamed(old, tmp_path / "new.jsonl", OLD_LOG_FIELDS)
    assert "timestamp" not in new.read_text() and "retrieved" in old.read_text()
    old_counts, new_counts = LoadCounts(), LoadCounts()
    before = [r.model_dump() for r in read_log(old, old_counts)]
    after = [r.model_dump() for r in read_log(new, new_counts)]
    assert before == after and old_counts == new_counts and old_counts.quarantined == 0
    last = before[-1]
    assert (last["judgments"], last["served_latency_ms"], last["served"][0]["id"]) == (
        {"d1": 2}, 12.5, "d1")
    assert last["logged_at"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert all(not set(OLD_LOG_FIELDS) & set(r["metadata"]) for r in before)


def test_a_field_under_both_names_is_quarantined(tmp_path: Path) -> None:
    """Both names of one field in one record: which is meant is unknown, so neither wins."""
    path = _write_jsonl(tmp_path / "log.jsonl", [json.dumps(
        {**GOOD, "latency_ms": 1.0, "served_latency_ms": 2.0})])
    good, bad = _split(list(read_log(path)))
    assert not good and bad[0].field == "latency_ms" and "older name" in bad[0].reason


EDGE_LINES = [
    json.dumps(GOOD), json.dumps({**GOOD, "query_id": "q2", "timestamp": "2026-11-01T00:00:00Z",
                                  "retrieved": [{"id": "d1", "rank": 1, "score": 2.5}]}),
    json.dumps({**GOOD, "query_id": "q3", "served": [], "retrieved": []}),  # both names
    json.dumps({**GOOD, "query_id": "q4", "team": "search", "metadata": {"a": 1}}),  # extra
    '{"query_id": "q5", "query": "x", "metadata": {"score": NaN}}',
    '{"query_id": "q6", "query": "x", "metadata": {"score": 1e400}}',
    '{"query_id": "q7", "query": "x", "metadata": {"a": ' + "[" * 70 + "]" * 70 + "}}",
    '{"query_id": "q8", "query": "x\\ud800"}', '{"query_id": "q9", "query": "x"} trailing',
    '{"query_id": ' + "1" * 5000 + ', "query": "x"}', json.dumps({**GOOD, "query_id": 10}),
    json.dumps(GOOD), json.dumps({"query_id": "q11", "query": " "}), "[1, 2]",
    json.dumps({"query_id": "q12", "query": "x", "served_latency_ms": -1}),
    json.dumps({"query_id": "q13", "query": "x", "judgments": {"d": "2"}, "cited": ["d"]}),
    '{"query_id": "q14", "query": "x", "query": "y"}', json.dumps({"query_id": "q15"}),
]


def test_one_step_parse_accepts_and_quarantines_as_the_step_by_step_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSONL lines are parsed and validated by pydantic in one step where it can settle
    them; every other line goes through json.loads and validation one step at a time. Both
    give the same records and the same quarantine entries (file, line, field, reason)."""
    logs = [FIXTURES / "bad_log.jsonl", FIXTURES / "scifact" / "log.jsonl",
            FIXTURES / "hotpotqa" / "log.jsonl", _write_jsonl(tmp_path / "e.jsonl", EDGE_LINES)]
    fast = [list(read_log(path)) for path in logs]

    def refuse(*_: object, **__: object) -> LogRecord:
        raise ValidationError.from_exception_data("LogRecord", [])

    monkeypatch.setattr(LogRecord, "model_validate_json", refuse)
    slow = [list(read_log(path)) for path in logs]
    assert fast == slow
    good, bad = _split(fast[-1])
    assert [record.query_id for record in good] == ["q1", "q2", "q4", "10", "q14"]
    assert {entry.field for entry in bad} >= {"retrieved", "metadata.score", "metadata.a",
                                              "query_id", "query", "served_latency_ms"}
