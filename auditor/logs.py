"""Reading query logs (JSONL, CSV, Parquet, or OpenInference/OTLP spans via
``auditor.spans``); corpora are read by ``auditor.corpus_reader``, judgments and TREC runs
by ``auditor.judgments``.

Everything streams: a log is read record by record (Parquet batch by batch), so a
million-line log is never held in memory. Each bad record becomes a ``QuarantineEntry``
naming the file, line and field; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditor import decode
from auditor.decode import RAW_LIMIT, Defect, Skipped
from auditor.errors import InputError
from auditor.line_keys import Keyed, key_reader
from auditor.records import OLD_LOG_FIELDS, LogKey, LogRecord, QuarantineEntry
from auditor.spans import read_spans

KNOWN_FIELDS = set(LogRecord.model_fields) | set(OLD_LOG_FIELDS)
BEIR_ALIASES = {"_id": "query_id", "text": "query"}
PARQUET_BATCH = 8_192
UNPARSED = object()  # a JSONL line's payload before _validate parses it
# CSV cells holding JSON text (under today's names or those before issue 11)
JSON_COLUMNS = ("served", "retrieved", "cited", "judgments", "relevant", "metadata")
CSV_REQUIRED = ("query_id", "query")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


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

    def quarantine(self, entry: QuarantineEntry) -> QuarantineEntry:
        self.quarantined += 1
        self.by_reason[entry.field] = self.by_reason.get(entry.field, 0) + 1
        return entry


def read_log(path: Path, counts: LoadCounts | None = None) -> Iterator[LogRecord | QuarantineEntry]:
    """Log records and quarantine entries, in file order. ``counts`` is updated as we go."""
    for _, item in read_numbered(path, counts):
        yield item


def read_picked(path: Path, lines: frozenset[int]) -> Iterator[LogRecord | QuarantineEntry]:
    """The records on ``lines`` only (numbered as :func:`read_numbered` numbers them), checked
    in full; a JSONL log's other lines are not even parsed. A sampled run's second pass."""
    seen: set[str] = set()
    for line, raw, payload in _raw_records(path, lines.__contains__):
        if line in lines:
            yield _validate(str(path), line, raw, payload, seen)


def read_numbered(path: Path, counts: LoadCounts | None = None
                  ) -> Iterator[tuple[int, LogRecord | QuarantineEntry]]:
    """:func:`read_log` with each item's line (a Parquet file's row, a span's position)."""
    counts = counts if counts is not None else LoadCounts()
    seen: set[str] = set()
    for line, raw, payload in _raw_records(path):
        item = _counted(str(path), line, raw, payload, seen, counts)
        if item is not None:
            yield line, item


def read_keys(path: Path, counts: LoadCounts, keys: type[LogKey]
              ) -> Iterator[tuple[int, Keyed | LogRecord | QuarantineEntry]]:
    """A sampled run's first pass: :func:`read_numbered`, but each line of a JSONL log is
    checked as ``keys`` only (:func:`auditor.line_keys.key_reader`), its bytes straight to
    the reader (at this size, every line of a night's log, the generic reader's layers of
    generators cost as much as the check). A line the quick check does not settle (invalid
    JSON or UTF-8, no usable id or query, a repeated id, a blank line) takes the whole
    record's path, so it is quarantined or counted as a whole-log read does it; a defect
    elsewhere in the line is not seen. Other formats are read in full."""
    if path.is_dir() or path.suffix.lower() not in JSONL_SUFFIXES or not path.is_file() \
            or read_spans(path) is not None:
        yield from read_numbered(path, counts)
        return
    seen: set[str] = set()
    source, read = str(path), key_reader(keys)
    with path.open("rb") as handle:
        for line, data in enumerate(handle, start=1):
            key = read(data)
            if key is not None and key.query_id not in seen:
                seen.add(key.query_id)
                counts.read += 1
                counts.accepted += 1
                yield line, key
                continue
            raw, defect = decode.line(line, data)
            item = _counted(source, line, raw, _jsonl_payload(raw, defect), seen, counts)
            if item is not None:
                yield line, item


def _counted(source: str, line: int, raw: str, payload: Any, seen: set[str],
             counts: LoadCounts) -> LogRecord | QuarantineEntry | None:
    """One record read, checked and counted; None for a blank line or a skipped span."""
    counts.read += 1
    if payload is None and not raw.strip():
        counts.blank += 1
        return None
    if isinstance(payload, Skipped):
        counts.skipped += 1
        return None
    if isinstance(payload, QuarantineEntry):  # a reader that rejected the record itself
        item = payload
    else:
        item = _validate(source, line, raw, payload, seen)
    if isinstance(item, QuarantineEntry):
        counts.quarantine(item)
    else:
        counts.accepted += 1
    return item


def _raw_records(path: Path, wanted: Callable[[int], bool] | None = None
                 ) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, parsed object or None) for each record of a log file.

    The parsed object may also be a ``Skipped`` or a ready ``QuarantineEntry`` (span files,
    whose line is the span's position: see ``auditor.spans.read_spans``). With ``wanted``,
    a JSONL file's other lines are passed over unparsed (the other formats yield them all).
    """
    if path.is_dir():
        queries = path / "queries.jsonl"
        if not queries.is_file():
            raise InputError(f"{path} is a directory without queries.jsonl (BEIR layout)")
        yield from _jsonl(queries, aliases=BEIR_ALIASES, wanted=wanted)
        return
    if not path.is_file():
        raise InputError(f"log file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        spans = read_spans(path)
        yield from spans if spans is not None else _jsonl(path, wanted=wanted)
    elif suffix == ".parquet":
        yield from _parquet(path)
    elif suffix == ".csv":
        yield from _csv(path)
    else:
        raise InputError(f"log file {path}: unknown format (use .jsonl, .parquet or .csv)")


def _jsonl(path: Path, aliases: dict[str, str] | None = None,
           wanted: Callable[[int], bool] | None = None) -> Iterator[tuple[int, str, Any]]:
    for number, raw, defect in decode.lines(path, wanted):
        yield number, raw, _jsonl_payload(raw, defect, aliases)


def _jsonl_payload(raw: str, defect: Defect | None, aliases: dict[str, str] | None = None
                   ) -> Any:
    """A JSONL line's payload: its defect, None when blank, UNPARSED (parsed and checked at
    once by :func:`_validate`), or with ``aliases`` the object under today's names."""
    if defect is not None:
        return Defect(_holding_replacement(raw), defect.reason)
    if not raw.strip():
        return None
    if not aliases:
        return UNPARSED
    payload = decode.parse_json(raw)
    if isinstance(payload, dict):
        payload = {aliases.get(key, key): value for key, value in payload.items()}
    return payload


def _holding_replacement(text: str) -> str:
    """The top-level field of a JSON line whose bytes were replaced (U+FFFD) on decoding,
    so an invalid UTF-8 entry names its field; ``(record)`` when the line does not parse."""
    payload = decode.parse_json(text)
    if isinstance(payload, dict):
        for key, value in payload.items():
            if "\ufffd" in key or (not decode.too_deep(value) and "\ufffd" in json.dumps(
                    value, ensure_ascii=False)):
                return key
    return "(record)"


def _parquet(path: Path) -> Iterator[tuple[int, str, Any]]:
    number = 0
    for rows in _parquet_batches(path):
        for row in rows:
            number += 1
            row = {key: value for key, value in row.items() if value is not None}
            yield number, json.dumps(row, default=str), row


def _parquet_batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    """Rows batch by batch; a file pyarrow cannot read is one InputError sentence."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH):
            yield batch.to_pylist()
    except (pa.ArrowException, OSError, ValueError, OverflowError, RecursionError) as exc:
        what = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise InputError(f"log file {path} is not a readable Parquet file ({what.rstrip('.')})"
                         ": export it again") from None


def _csv(path: Path) -> Iterator[tuple[int, str, Any]]:
    """CSV rows; list/dict columns (served, cited, judgments, metadata) hold JSON text.

    The header line is not a record. A row's line is the physical line where it ends.
    """
    csv.field_size_limit(max(csv.field_size_limit(), decode.CSV_FIELD_LIMIT))
    bad_lines: dict[int, Defect] = {}

    def texts() -> Iterator[str]:
        for number, text, defect in decode.lines(path):
            if defect is not None:
                bad_lines[number] = defect
            yield text

    reader = csv.reader(texts())
    header: list[str] | None = None
    last = 0
    try:
        for row in reader:
            first, last = last + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                if header is None:
                    continue  # blank lines before the header are not records
                yield last, "", None
                continue
            if header is None:
                header = _csv_header(path, first, row, bad_lines)
                continue
            cells = dict(zip(header, row, strict=False))
            raw = json.dumps(cells)
            defect = next((bad_lines.pop(n) for n in range(first, last + 1) if n in bad_lines),
                          None)
            if defect is not None:
                column = next((k for k, v in cells.items() if k and "\ufffd" in v), defect.field)
                yield last, raw, Defect(column, defect.reason)
            elif len(row) > len(header):
                yield last, raw, Defect("(record)", f"{len(row)} cells but the header names "
                                                    f"{len(header)} columns")
            else:
                yield last, raw, {key: _csv_value(key, value) for key, value in cells.items()
                                  if value != ""}
    except csv.Error as exc:
        raise InputError(f"CSV log {path}:{reader.line_num}: {exc}") from None


def _csv_header(path: Path, line: int, row: list[str], bad_lines: dict[int, Defect]
                ) -> list[str]:
    if bad_lines:
        raise InputError(f"CSV log {path}:{line}: the header line is not valid UTF-8")
    header = [name.strip() for name in row]
    missing = [name for name in CSV_REQUIRED if name not in header]
    if missing:
        shown = ", ".join(" ".join(name.split()) for name in header)  # one line, always
        raise InputError(f"CSV log {path}:{line}: the header has no {' or '.join(missing)} column "
                         f"(it names {shown[:200]})")
    return header


def _csv_value(key: str, value: str) -> Any:
    """A cell: JSON columns parsed (or a Defect), latency as a number, extra columns parsed
    as JSON when they are (a finite number, list, object...), else kept as text."""
    if key in JSON_COLUMNS:
        parsed = decode.parse_json(value)
        return Defect(key, f"column {key} is not valid JSON ({parsed.reason})") if isinstance(
            parsed, Defect) else parsed
    if key not in KNOWN_FIELDS:
        parsed = decode.parse_json(value)
        if isinstance(parsed, Defect) or (isinstance(parsed, float) and not math.isfinite(
                parsed)):
            return value
        return parsed
    if key in ("served_latency_ms", "latency_ms"):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _validate(
    source: str, line: int, raw: str, payload: Any, seen: set[str]
) -> LogRecord | QuarantineEntry:
    def bad(field_name: str, reason: str) -> QuarantineEntry:
        return QuarantineEntry(source, line, field_name, reason, raw[:RAW_LIMIT].rstrip("\n"))

    if payload is UNPARSED:
        record = _parsed_and_checked(raw)
        if record is None:
            payload = decode.parse_json(raw)
        elif record.query_id in seen:
            return bad("query_id", f"duplicate query_id {record.query_id!r}")
        else:
            seen.add(record.query_id)
            return record
    if isinstance(payload, Defect):
        return bad(payload.field, payload.reason)
    if not isinstance(payload, dict):
        return bad("(record)", f"expected a JSON object, got {type(payload).__name__}")
    for value in payload.values():
        if isinstance(value, Defect):
            return bad(value.field, value.reason)
    twice = next((old for old, name in OLD_LOG_FIELDS.items() if old in payload and name in
                  payload), None)
    if twice is not None:
        return bad(twice, f"both {twice} and {OLD_LOG_FIELDS[twice]} are given: they name one "
                          f"field ({twice} is its older name), keep one")
    known = {key: value for key, value in payload.items() if key in KNOWN_FIELDS}
    extra = {key: value for key, value in payload.items() if key not in KNOWN_FIELDS}
    metadata = known.get("metadata", {})
    if not isinstance(metadata, dict):
        return bad("metadata", "metadata must be an object")
    defect = decode.free_values(metadata, "metadata.") if metadata else None
    if extra:
        defect = defect or decode.free_values(extra)
        known["metadata"] = {**extra, **metadata}
    if defect is not None:
        return bad(defect.field, defect.reason)
    try:
        record = LogRecord.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        return bad(field_path(first["loc"]), first["msg"])
    if record.query_id in seen:
        return bad("query_id", f"duplicate query_id {record.query_id!r}")
    seen.add(record.query_id)
    return record


def _parsed_and_checked(raw: str) -> LogRecord | None:
    """The record of a JSONL line that pydantic parses and validates in one step (about half
    the CPU of ``json.loads`` then ``model_validate``, which a sampled run pays on every line
    of the log), or None for any line this does not settle: extra fields (kept as metadata),
    an older field name given beside its new one, metadata that is not finite or too deep,
    or anything invalid. Those take the step-by-step path, which names the file, line and
    field exactly as before; a record accepted here is the one that path accepts."""
    try:
        record = LogRecord.model_validate_json(raw)
    except ValidationError:
        return None
    if record.metadata and decode.free_values(record.metadata, "metadata.") is not None:
        return None
    return record


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "datetime"}


def field_path(loc: tuple) -> str:
    """``("served_latency_ms", "float")`` → ``served_latency_ms``: drop pydantic's union
    branch tags."""
    parts = [
        str(part) for part in loc
        if isinstance(part, int) or (part not in _TYPE_TAGS and "[" not in part)
    ]
    return ".".join(parts) or "(record)"
