"""Reading a corpus: a BEIR ``corpus.jsonl`` or a chunk file, as ``Chunk`` records,
optionally cut into chunks of about ``chunk_words`` words at sentence ends.

A bad line stops the read with an ``InputError`` naming file, line and field: an index
built from part of a corpus would answer every query wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditor import decode
from auditor.decode import Defect
from auditor.errors import InputError
from auditor.logs import field_path
from auditor.records import Chunk

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def read_corpus(path: Path, chunk_words: int = 0) -> Iterator[Chunk]:
    """Chunks from a BEIR corpus (``_id``, ``title``, ``text``) or a chunk file.

    A chunk file has ``chunk_id``, ``doc_id`` (and optional ``position``). With
    ``chunk_words`` > 0, each document is cut at sentence ends into chunks of about that
    many words; chunk ids are ``{doc_id}#{position}``.
    """
    source = path / "corpus.jsonl" if path.is_dir() else path
    if not source.is_file():
        raise InputError(f"corpus file {source} does not exist")
    for number, raw, defect in decode.lines(source):
        if defect is None and not raw.strip():
            continue
        row = defect or decode.parse_json(raw)
        if isinstance(row, Defect) or not isinstance(row, dict):
            why = row.reason if isinstance(row, Defect) else "expected a JSON object"
            raise InputError(f"corpus file {source}:{number}: {why}")
        try:
            yield from _chunks(row, chunk_words)
        except (ValidationError, ValueError, TypeError) as exc:
            what = exc.errors()[0] if isinstance(exc, ValidationError) else None
            why = (f"{field_path(what['loc'])}: {what['msg']}" if what else str(exc))
            raise InputError(f"corpus file {source}:{number}: {why}") from None


def _chunks(row: dict[str, Any], chunk_words: int) -> Iterator[Chunk]:
    doc_id = str(row.get("doc_id", row.get("_id", row.get("chunk_id"))))
    title, text = str(row.get("title") or ""), str(row.get("text") or "")
    if "chunk_id" in row:
        yield Chunk(
            chunk_id=str(row["chunk_id"]), doc_id=doc_id,
            position=int(row.get("position", 0)), title=title, text=text,
        )
    elif chunk_words > 0:
        for position, piece in enumerate(split_words(text, chunk_words)):
            yield Chunk(
                chunk_id=f"{doc_id}#{position}", doc_id=doc_id, position=position,
                title=title, text=piece,
            )
    else:
        yield Chunk(chunk_id=doc_id, doc_id=doc_id, title=title, text=text)


def split_words(text: str, chunk_words: int) -> list[str]:
    """Pack whole sentences into pieces of about ``chunk_words`` words (never empty)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in SENTENCE_END.split(text.strip()):
        words = len(sentence.split())
        if current and size + words > chunk_words:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += words
    if current or not pieces:
        pieces.append(" ".join(current))
    return pieces
