"""Reading judgments (TREC or BEIR qrels) and TREC run files.

A qrels file streams line by line, each bad line a ``QuarantineEntry``; a bad line of a
run file stops the read with an ``InputError`` naming file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from auditor import decode
from auditor.decode import RAW_LIMIT, Defect
from auditor.errors import InputError
from auditor.logs import LoadCounts
from auditor.records import Qrel, QuarantineEntry, ServedItem

QrelRow = tuple[str, str, int, str | None]  # query_id, doc_id, grade, iteration


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
        if number == 1 and defect is None and parts[0].lower() in ("query-id", "query_id"):
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
