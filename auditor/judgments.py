"""Reading judgments (TREC or BEIR qrels) and TREC run files.

A qrels file streams line by line, each bad line a ``QuarantineEntry``; a bad line of a
run file stops the read with an ``InputError`` naming file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from auditor import decode
from auditor.decode import BOM, GRADE_MAX, GRADE_MIN, RAW_LIMIT, Defect
from auditor.errors import InputError
from auditor.logs import LoadCounts
from auditor.records import Qrel, QuarantineEntry, ServedItem

QrelRow = tuple[str, str, int, str | None]  # query_id, doc_id, grade, iteration
QREL_COLUMNS = ("query_id", "doc_id", "grade", "iteration")
HEADER_IDS = ("query-id", "query_id")
# Any character Python's str.split() splits on: a field holding one is read line by line
_SPACE = (r"[\s\x0b\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}"
          r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]")


def read_qrels(path: Path, counts: LoadCounts | None = None) -> Iterator[Qrel | QuarantineEntry]:
    """TREC qrels (``qid iter docid rel``) or BEIR qrels (``query-id corpus-id score``, TSV).

    A BEIR header line counts as skipped; a bad line becomes a quarantine entry.
    """
    for item in qrel_rows(path, counts):
        if isinstance(item, QuarantineEntry):
            yield item
        else:
            query_id, doc_id, grade, iteration = item
            yield Qrel(query_id=query_id, doc_id=doc_id, grade=grade, iteration=iteration)


def qrel_rows(path: Path, counts: LoadCounts | None = None
              ) -> Iterator[QrelRow | QuarantineEntry]:
    """:func:`read_qrels` as plain (query_id, doc_id, grade, iteration) tuples: a run reads
    every label of a night (over a million), and a model object per label was a third of
    a sampled run's reading time."""
    counts = counts if counts is not None else LoadCounts()
    if not path.is_file():
        raise InputError(f"qrels file {path} does not exist")
    for number, raw, defect in decode.lines(path):
        counts.read += 1
        parts = [part.strip() for part in (raw.split("\t") if "\t" in raw else raw.split())]
        if defect is None and not raw.strip():
            counts.blank += 1
            continue
        if number == 1 and defect is None and parts[0].lower() in HEADER_IDS:
            counts.skipped += 1
            continue
        item = _qrel(parts, defect)
        if isinstance(item, Defect):
            yield counts.quarantine(QuarantineEntry(
                str(path), number, item.field, item.reason, raw[:RAW_LIMIT].rstrip("\n")))
        else:
            counts.accepted += 1
            yield item


def _qrel(parts: list[str], defect: Defect | None) -> QrelRow | Defect:
    if defect is not None:
        return defect
    iteration: str | None = None
    if len(parts) == 4:
        query_id, iteration, doc_id, text = parts
    elif len(parts) == 3:
        query_id, doc_id, text = parts
    else:
        return Defect("(record)", f"expected 3 or 4 columns, got {len(parts)}")
    if not query_id or not doc_id:
        return Defect("query_id" if not query_id else "doc_id", "empty id")
    grade = decode.grade(text)
    if isinstance(grade, Defect):
        return grade
    return query_id, doc_id, grade, iteration


def qrel_table(path: Path) -> tuple[pa.Table, bool] | None:
    """A clean qrels file at once, as columns :data:`QREL_COLUMNS` (iteration null in a
    3-column file), and whether a header line was skipped; None when any line needs the
    line-by-line reader (:func:`qrel_rows`), which says what is wrong with it.

    Why a second reader: a night's qrels hold a label per judged pair, over a million, and
    reading them line by line was a third of a sampled run. Arrow's CSV reader takes one
    separator for the whole file, so it is used only where it reads what :func:`qrel_rows`
    reads: valid UTF-8 without a byte order mark, one separator (the first data line's, as
    :func:`auditor.judging._layout` finds it), 3 or 4 columns on every line, no whitespace
    inside a field, non-empty ids and integer grades in range. Anything else is None."""
    if not path.is_file():
        raise InputError(f"qrels file {path} does not exist")
    with path.open("rb") as handle:
        first = handle.readline()
        second = handle.readline()
    if first.startswith(BOM):
        return None
    words = first.split(b"\t" if b"\t" in first else None, 1)
    header = bool(words) and words[0].strip().lower() in (name.encode() for name in HEADER_IDS)
    data = second if header else first
    try:
        table = pv.read_csv(path, pv.ReadOptions(
            autogenerate_column_names=True, skip_rows=int(header), use_threads=False),
            pv.ParseOptions(delimiter="\t" if b"\t" in data else " ", quote_char=False,
                            double_quote=False, escape_char=False, ignore_empty_lines=True),
            pv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(4)}))
    except (pa.ArrowInvalid, ValueError):
        return None
    if table.num_columns not in (3, 4) or not table.num_rows:
        return None
    columns = table.columns
    if any(pc.any(pc.match_substring_regex(column, _SPACE)).as_py() for column in columns):
        return None
    query_ids, doc_ids, grades = (columns[0], columns[-2], columns[-1])
    if pc.any(pc.equal(pc.utf8_length(query_ids), 0)).as_py() or pc.any(
            pc.equal(pc.utf8_length(doc_ids), 0)).as_py():
        return None
    try:
        grades = pc.cast(grades, pa.int64())
    except (pa.ArrowInvalid, ValueError):
        return None
    low, high = pc.min_max(grades).values()
    if low.as_py() < GRADE_MIN or high.as_py() > GRADE_MAX:
        return None
    iterations = columns[1] if table.num_columns == 4 else pa.nulls(table.num_rows, pa.string())
    return pa.table([query_ids, doc_ids, pc.cast(grades, pa.int32()), iterations],
                    names=list(QREL_COLUMNS)), header


def read_trec_run(path: Path) -> Iterator[tuple[str, ServedItem]]:
    """TREC run lines ``qid Q0 docid rank score tag`` as (query_id, item)."""
    if not path.is_file():
        raise InputError(f"run file {path} does not exist")
    for number, raw, defect in decode.lines(path):
        if defect is not None:
            raise InputError(f"run file {path}:{number}: {defect.reason}")
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise InputError(f"run file {path}:{number}: expected 6 columns in a TREC run line, "
                             f"got {len(parts)}")
        query_id, _, doc_id, rank, score, _ = parts
        number_score = decode.finite(score)
        if not rank.isdigit() or not 1 <= int(rank) <= 10**9:
            raise InputError(f"run file {path}:{number}: rank {rank[:40]!r} is not a positive "
                             "integer")
        if number_score is None:
            raise InputError(f"run file {path}:{number}: score {score[:40]!r} is not a finite "
                             "number")
        yield query_id, ServedItem(id=doc_id, rank=int(rank), score=number_score)
