"""Reading inputs: query logs, corpora, judgments and TREC runs.

Everything streams: a log is read record by record (Parquet batch by batch), so a
million-line log is never held in memory. Each bad record becomes a ``QuarantineEntry``
naming the file, line and field; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditor.records import Chunk, LogRecord, Qrel, QuarantineEntry, RetrievedItem

KNOWN_FIELDS = set(LogRecord.model_fields)
BEIR_ALIASES = {"_id": "query_id", "text": "query"}
RAW_LIMIT = 2_000  # characters of a bad record kept for the user to inspect
PARQUET_BATCH = 8_192


class InputError(Exception):
    """An input file cannot be read at all (missing, unknown format)."""


@dataclass
class LoadCounts:
    """What happened to every record read: accepted + quarantined + blank + skipped == read.

    ``skipped`` counts records that are not retrievals (a span file's LLM or chain spans).
    """

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    blank: int = 0
    skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


def read_log(path: Path, counts: LoadCounts | None = None) -> Iterator[LogRecord | QuarantineEntry]:
    """Log records and quarantine entries, in file order. ``counts`` is updated as we go."""
    counts = counts if counts is not None else LoadCounts()
    seen: set[str] = set()
    for line, raw, payload in _raw_records(path):
        counts.read += 1
        if payload is None and not raw.strip():
            counts.blank += 1
            continue
        if isinstance(payload, Skipped):
            counts.skipped += 1
            continue
        if isinstance(payload, QuarantineEntry):  # a reader that rejected the record itself
            item: LogRecord | QuarantineEntry = payload
        else:
            item = _validate(str(path), line, raw, payload, seen)
        if isinstance(item, QuarantineEntry):
            counts.quarantined += 1
            counts.by_reason[item.field] = counts.by_reason.get(item.field, 0) + 1
        else:
            counts.accepted += 1
        yield item


@dataclass(frozen=True)
class Skipped:
    """A record that is not a retrieval (e.g. an LLM span): counted, never quarantined."""

    kind: str


def _raw_records(path: Path) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, parsed object or None) for each record of a log file.

    The parsed object may also be a ``Skipped`` or a ready ``QuarantineEntry`` (span files,
    whose line is the span's position: see ``auditor.spans.read_spans``).
    """
    if path.is_dir():
        queries = path / "queries.jsonl"
        if not queries.is_file():
            raise InputError(f"{path} is a directory without queries.jsonl (BEIR layout)")
        yield from _jsonl(queries, aliases=BEIR_ALIASES)
        return
    if not path.is_file():
        raise InputError(f"log file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        from auditor.spans import read_spans  # spans imports this module

        spans = read_spans(path)
        yield from spans if spans is not None else _jsonl(path)
    elif suffix == ".parquet":
        yield from _parquet(path)
    elif suffix == ".csv":
        yield from _csv(path)
    else:
        raise InputError(f"log file {path}: unknown format (use .jsonl, .parquet or .csv)")


def _jsonl(path: Path, aliases: dict[str, str] | None = None) -> Iterator[tuple[int, str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                yield number, raw, None
                continue
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, raw, _BadJson(f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            if aliases and isinstance(payload, dict):
                payload = {aliases.get(key, key): value for key, value in payload.items()}
            yield number, raw, payload


def _parquet(path: Path) -> Iterator[tuple[int, str, Any]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            row = {key: value for key, value in row.items() if value is not None}
            yield number, json.dumps(row, default=str), row


def _csv(path: Path) -> Iterator[tuple[int, str, Any]]:
    """CSV rows; list/dict columns (retrieved, cited, relevant, metadata) hold JSON text."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num  # physical line of the row's end (header is line 1)
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key is None or value in (None, ""):
                    continue
                parsed[key] = _csv_value(key, value)
            yield number, json.dumps(row), parsed


def _csv_value(key: str, value: str) -> Any:
    if key in ("retrieved", "cited", "relevant", "metadata") or key not in KNOWN_FIELDS:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value if key not in ("retrieved", "cited", "relevant", "metadata") else _BadJson(
                f"column {key} is not valid JSON"
            )
    if key == "latency_ms":
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class _BadJson:
    reason: str


def _validate(
    source: str, line: int, raw: str, payload: Any, seen: set[str]
) -> LogRecord | QuarantineEntry:
    def bad(field_name: str, reason: str) -> QuarantineEntry:
        return QuarantineEntry(source, line, field_name, reason, raw[:RAW_LIMIT].rstrip("\n"))

    if isinstance(payload, _BadJson):
        return bad("(record)", payload.reason)
    if not isinstance(payload, dict):
        return bad("(record)", f"expected a JSON object, got {type(payload).__name__}")
    for key, value in payload.items():
        if isinstance(value, _BadJson):
            return bad(key, value.reason)
    known = {key: value for key, value in payload.items() if key in KNOWN_FIELDS}
    extra = {key: value for key, value in payload.items() if key not in KNOWN_FIELDS}
    if extra:
        metadata = known.get("metadata", {})
        if not isinstance(metadata, dict):
            return bad("metadata", "metadata must be an object")
        known["metadata"] = {**extra, **metadata}
    try:
        record = LogRecord.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        return bad(_field_path(first["loc"]), first["msg"])
    if record.query_id in seen:
        return bad("query_id", f"duplicate query_id {record.query_id!r}")
    seen.add(record.query_id)
    return record


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "datetime"}


def _field_path(loc: tuple) -> str:
    """``("latency_ms", "float")`` → ``latency_ms``: drop pydantic's union branch tags."""
    parts = [
        str(part) for part in loc
        if isinstance(part, int) or (part not in _TYPE_TAGS and "[" not in part)
    ]
    return ".".join(parts) or "(record)"


def read_qrels(path: Path) -> Iterator[Qrel | QuarantineEntry]:
    """TREC qrels (``qid iter docid rel``) or BEIR qrels (``query-id corpus-id score``, TSV)."""
    if not path.is_file():
        raise InputError(f"qrels file {path} does not exist")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            parts = raw.split("\t") if "\t" in raw else raw.split()
            parts = [part.strip() for part in parts]
            if not raw.strip() or (number == 1 and parts[0].lower() in ("query-id", "query_id")):
                continue
            if len(parts) == 4:
                query_id, _, doc_id, grade = parts
            elif len(parts) == 3:
                query_id, doc_id, grade = parts
            else:
                yield QuarantineEntry(
                    str(path), number, "(record)", f"expected 3 or 4 columns, got {len(parts)}",
                    raw.rstrip("\n"),
                )
                continue
            try:
                relevance = int(float(grade))
            except ValueError:
                yield QuarantineEntry(
                    str(path), number, "relevance", f"not a number: {grade!r}", raw.rstrip("\n")
                )
                continue
            yield Qrel(query_id=query_id, doc_id=doc_id, relevance=relevance)


def read_trec_run(path: Path) -> Iterator[tuple[str, RetrievedItem]]:
    """TREC run lines ``qid Q0 docid rank score tag`` as (query_id, item)."""
    if not path.is_file():
        raise InputError(f"run file {path} does not exist")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"{path}:{number}: expected 6 columns in a TREC run line")
            query_id, _, doc_id, rank, score, _ = parts
            yield query_id, RetrievedItem(id=doc_id, rank=int(rank), score=float(score))


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
    with source.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                doc_id = str(row.get("doc_id", row.get("_id", row.get("chunk_id"))))
                title, text = str(row.get("title") or ""), str(row.get("text") or "")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise InputError(f"{source}:{number}: not a corpus record ({exc})") from None
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
