"""The two qrels readers agree: Arrow's CSV reader takes a clean file at once, the line-by-line
reader everything else, and a file's labels, layout and quarantine do not depend on which
one read it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.judging import _columns, _pairs, read_labels
from auditor.judgments import qrel_rows, qrel_table
from auditor.records import QuarantineEntry

IDS = st.sampled_from(["q1", "q2", "Q10", "doc-7", "d_3", "é9", "a b", "x\u2003y", ""])
GRADES = st.sampled_from(["0", "1", "2", "-1", "+1", "01", "1.0", "1e400", "7000", "x", "nan"])
SEPARATORS = st.sampled_from(["\t", " ", "  ", "\t ", " \t"])
ENDS = st.sampled_from(["\n", "\r\n"])


@st.composite
def qrels_text(draw: st.DrawFn) -> bytes:
    """Mostly clean files (so both readers are exercised), now and then a messy line."""
    four = draw(st.booleans())
    separator = draw(st.sampled_from(["\t", " "]))
    end = draw(ENDS)
    lines = ["query-id\tcorpus-id\tscore"] if draw(st.booleans()) and not four else []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.integers(0, 5)) == 0:  # a messy line
            parts = [draw(IDS), draw(IDS), draw(GRADES)]
            lines.append(draw(SEPARATORS).join(parts) if draw(st.booleans()) else
                         draw(st.sampled_from(["", "   ", "q1 d1", "q1 0 d1 1 extra"])))
        else:
            query = draw(st.sampled_from(["q1", "q2", "Q10", "é9"]))
            doc = draw(st.sampled_from(["d1", "d2", "doc-7"]))
            grade = draw(st.sampled_from(["0", "1", "2", "-1"]))
            lines.append(separator.join([query, "0", doc, grade] if four else
                                        [query, doc, grade]))
    body = end.join(lines) + (end if draw(st.booleans()) else "")
    data = body.encode()
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data += b"q9\td\xff\t1\n"  # invalid UTF-8
    return data


def by_lines(path: Path) -> tuple[list, list[QuarantineEntry]]:
    """The line-by-line reader's labels (first position, last grade) and quarantine."""
    rows, bad = [], []
    for item in qrel_rows(path):
        (bad if isinstance(item, QuarantineEntry) else rows).append(item)
    pairs, _ = _pairs(_columns(rows))
    return pairs.select(["query_id", "doc_id", "grade", "iteration"]).to_pylist(), bad


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=qrels_text())
def test_the_labels_do_not_depend_on_the_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "qrels.tsv"
    path.write_bytes(data)
    labels, _, _, bad = read_labels(path, "imported:qrels.tsv")
    expected, expected_bad = by_lines(path)
    assert labels.select(["query_id", "doc_id", "grade", "iteration"]).to_pylist() == expected
    assert bad == expected_bad
    if qrel_table(path) is not None:  # the fast reader only takes files without a defect
        assert not expected_bad


@pytest.mark.parametrize("text,fast", [
    ("q1\t0\td1\t1\nq1\t0\td2\t0\n", True),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\n\nq2\td1\t2\n", True),
    ("q1 0 d1 1\r\nq2 0 d1 2\r\n", True),
    ("q1  0 d1 1\n", False),  # two spaces: whitespace-split by the line reader
    ("q1\t0\td1\t1.0\n", False),  # an integral float grade
    ("q1\t0\td1\t1\nq2 0 d1 1\n", False),  # a line without the file's separator
])
def test_only_a_clean_file_takes_the_fast_reader(tmp_path: Path, text: str, fast: bool) -> None:
    path = tmp_path / "qrels.tsv"
    path.write_text(text, newline="")
    assert (qrel_table(path) is not None) == fast
    labels, layout, _, bad = read_labels(path, "x")
    assert not bad and labels.num_rows >= 1
    assert labels.select(["query_id", "doc_id", "grade", "iteration"]).to_pylist() == by_lines(
        path)[0]
    assert layout["header"] == ("query-id\tcorpus-id\tscore" if "query-id" in text else None)
