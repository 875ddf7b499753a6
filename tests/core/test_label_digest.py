"""A judgment list's digest is the SHA-256 of its rows' Python ``repr``, whichever way it is
computed: stores hold these digests, and a run reuses a stored list version by digest, so a
digest that changed would make every store's next run create a duplicate version."""

from __future__ import annotations

import hashlib

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.label_digest import DIGESTED, digest

TEXT = st.one_of(st.none(), st.sampled_from(["q1", "doc-7", "imported:qrels.tsv", ""]),
                 st.text(max_size=6))  # quotes, backslashes, control characters, non-ASCII
ROW = st.fixed_dictionaries({name: st.integers(-3, 3) if name == "grade" else TEXT
                             for name in DIGESTED})


def table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([(name, pa.int32() if name == "grade" else pa.string())
                        for name in DIGESTED] + [("position", pa.int32())])
    return pa.Table.from_pylist([{**row, "position": i} for i, row in enumerate(rows)],
                                schema=schema)


def by_repr(rows: list[dict]) -> str:
    hasher = hashlib.sha256()
    for row in rows:
        hasher.update(repr(tuple(row[name] for name in DIGESTED)).encode("utf-8"))
    return hasher.hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, max_size=8))
def test_digest_is_the_rows_repr(rows: list[dict]) -> None:
    assert digest(table(rows)) == by_repr(rows)


def test_digest_spans_slices_read_either_way() -> None:
    """Over 65,536 rows the table is read in slices: a plain one, one with a quote."""
    rows = [{name: None for name in DIGESTED} | {"query_id": f"q{i}", "doc_id": f"d{i % 7}",
                                                 "grade": i % 3, "source": "imported:x"}
            for i in range(70_000)]
    rows[69_000]["note"] = "it's"
    rows[3]["grade"] = None
    assert digest(table(rows)) == by_repr(rows)
    assert digest(table(rows[:0])) == by_repr([])
