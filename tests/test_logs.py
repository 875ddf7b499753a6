"""Reading logs, qrels, runs and corpora: nothing is lost, bad records say where and why."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditor.logs import (
    InputError,
    LoadCounts,
    read_corpus,
    read_log,
    read_qrels,
    read_trec_run,
    split_words,
)
from auditor.records import LogRecord, Qrel, QuarantineEntry

from .conftest import FIXTURES

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
    assert good[0].retrieved[0].id == "d1" and good[0].latency_ms == 12.5
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
    assert beir_items[:2] == [Qrel(query_id="1", doc_id="d1", relevance=1),
                              Qrel(query_id="1", doc_id="d2", relevance=2)]
    assert isinstance(beir_items[2], QuarantineEntry) and beir_items[2].line == 4
    trec_items = list(read_qrels(trec))
    assert trec_items[1] == Qrel(query_id="1", doc_id="d2", relevance=0)
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
