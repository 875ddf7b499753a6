"""Interchange with other tools: TREC run and qrels files out of the store, so any
trec_eval-compatible tool can check our numbers. (OpenInference spans are read as a log by
``auditor.spans``.)
"""

from __future__ import annotations

from pathlib import Path

from auditor.errors import AuditorError
from auditor.store import Store
from auditor.store.read.trec import first_spaced_id, write_trec


class ExportError(AuditorError):
    """A run cannot be written in TREC format (an id holds whitespace)."""


def export_trec(
    store: Store,
    run_id: str,
    run_path: Path,
    qrels_path: Path | None = None,
    *,
    tag: str | None = None,
) -> tuple[int, int]:
    """Write a stored run as a TREC run file (``qid Q0 docid rank score tag``) and its
    judgments as TREC qrels (``qid 0 docid rel``); returns (run lines, qrels lines).

    Ids are at the run's own level, as its judgments are: at ``doc`` each document is written
    once, at its best rank, and ranks are renumbered 1..n. ``tag`` defaults to the run id.
    Scores are the hit scores unless a query's scores tie (see :mod:`auditor.store.read.trec`).
    """
    tag = tag or run_id
    if not tag or any(ch.isspace() for ch in tag):
        raise ExportError(f"TREC run tag {tag!r} must be one word")
    column = "doc_id" if store.run(run_id)["level"] == "doc" else "chunk_id"
    spaced = first_spaced_id(store, run_id, column, qrels_path is not None)
    if spaced is not None:
        raise ExportError(f"run {run_id}: query {spaced.query_id!r} / id {spaced.id!r} in "
                          f"its {spaced.table} holds whitespace, which a TREC file cannot "
                          "represent")
    return write_trec(store, run_id, column, tag, run_path, qrels_path)
