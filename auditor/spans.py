"""Retrieval spans (OTLP JSON or Phoenix-style span JSON) read as a query log.

A team that traces its RAG app with OpenInference or OpenTelemetry's GenAI conventions can
audit what it logged without writing a JSONL log: each retrieval span becomes one
``LogRecord``; other spans are skipped (LLM spans lend their output to the retrieval spans
of their trace as the answer). ``auditor.logs``
calls ``read_spans`` for every ``.json``/``.jsonl``/``.ndjson`` log.

Here: the files (layout sniffing, loading, OTLP's nested lists and ``AnyValue``s, a
position per span); what a span's attributes mean is ``auditor.span_fields``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from auditor import decode
from auditor.decode import RAW_LIMIT, Defect, Skipped
from auditor.errors import InputError
from auditor.records import QuarantineEntry
from auditor.span_fields import ID_KEYS, Span, end_nanos, llm_answer, record_payload, span_kind

SpanLayout = Literal["lines", "document"]

_MARKS = re.compile(
    r'"(resourceSpans|openinference\.span\.kind|span_kind|gen_ai\.operation\.name)"')
_HEAD = 65_536


def span_layout(path: Path) -> SpanLayout | None:
    """How a ``.json``/``.jsonl`` file holds spans, or None when it is an ordinary log.

    The first non-blank line decides. When it is JSON holding spans (an object with
    ``resourceSpans``, a span — ``attributes`` plus trace/span ids and no ``query`` — or an
    array or ``{"data": [...]}`` whose first item is a span) the layout is ``lines``, or
    ``document`` when no other non-blank line follows (a minified export). When it is not
    JSON by itself but opens an object or array and the first 64 KiB name ``resourceSpans``,
    ``openinference.span.kind``, ``span_kind`` or ``gen_ai.operation.name``, it is
    ``document`` (a pretty-printed export).
    """
    return _sniff(path)[0]


def _sniff(path: Path) -> tuple[SpanLayout | None, Any]:
    """The layout, and for a one-line document its parsed value (so it is parsed once)."""
    lines = decode.lines(path)
    first = next((text for _, text, _ in lines if text.strip()), "")
    if not first:
        return None, None
    more = any(text.strip() for _, text, _ in lines)
    value = decode.parse_json(first)
    if isinstance(value, Defect):
        with path.open("rb") as handle:  # sniffing only: bad bytes cannot hide a marker
            head = handle.read(_HEAD).decode("utf-8", "replace")
        opens = first.lstrip().startswith(("{", "["))
        return ("document" if opens and _MARKS.search(head) else None), None
    if not _holds_spans(value):
        return None, None
    return ("lines", None) if more else ("document", value)


def _holds_spans(value: Any) -> bool:
    if isinstance(value, dict) and "resourceSpans" in value:
        return True
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if isinstance(value, list):
        return bool(value) and _is_span(value[0])
    return _is_span(value)


def _is_span(value: Any) -> bool:
    if not isinstance(value, dict) or "query" in value or "query_id" in value:
        return False
    has_attributes = any(key == "attributes" or key.startswith("attributes.") for key in value)
    ids = ID_KEYS["trace"] + ID_KEYS["span"] + ("context",)
    return has_attributes and any(key in value for key in ids)


def read_spans(path: Path) -> Iterator[tuple[int, str, Any]] | None:
    """(position, raw span, record payload | Skipped | QuarantineEntry) per span, for
    ``read_log``; None when the file is an ordinary log (see ``span_layout``).

    Every span and every unreadable item gets its own position, so quarantine entries never
    share one: in a ``lines`` file where no line holds more than one span it is the line
    number, otherwise (a ``document``, or lines holding several spans) the item's 1-based
    index in the file. Two passes over the parsed data (a document is parsed once): the
    first collects each trace's answer (its last LLM span's output), the second turns
    RETRIEVER spans into log record payloads.
    """
    layout, document = _sniff(path)
    if layout is None:
        return None
    if layout == "document":
        units = [(1, _load(path) if document is None else document)]
        return _read(str(path), layout, lambda: units)
    return _read(str(path), layout, lambda: _lines(path))


@dataclass(frozen=True, slots=True)
class _Bad:
    """An item that is not a span, before it has a position."""

    field: str
    reason: str
    raw: str


def _read(source: str, layout: SpanLayout, units: Callable[[], Iterable[tuple[int, Any]]]
          ) -> Iterator[tuple[int, str, Any]]:
    answers: dict[str, tuple[int, str]] = {}
    by_line = layout == "lines"
    for _, unit in units():
        found = 0
        for item in _unit_spans(unit):
            found += 1
            if not isinstance(item, _Bad) and span_kind(item[1]) == "LLM":
                span = Span(item[1])
                answer = llm_answer(span.attributes)
                end = end_nanos(span.end)
                if span.trace_id and answer and end >= answers.get(span.trace_id, (-1, ""))[0]:
                    answers[span.trace_id] = (end, answer)
        by_line = by_line and found <= 1
    index = 0
    for line, unit in units():
        for item in _unit_spans(unit):
            index += 1
            position = line if by_line else index
            if isinstance(item, _Bad):
                yield position, item.raw, QuarantineEntry(source, position, item.field,
                                                          item.reason, item.raw)
                continue
            original, normalised = item
            kind = span_kind(normalised)
            if kind != "RETRIEVER":
                yield position, "", Skipped(kind or "(no span kind)")
                continue
            span = Span(normalised)
            raw = json.dumps(original, default=str)[:RAW_LIMIT]
            answer = answers.get(span.trace_id or "", (0, None))[1]
            payload = record_payload(span, answer)
            if isinstance(payload, tuple):
                where = f"span {index}" + (f" on line {line}" if layout == "lines" else "")
                field, reason = payload
                payload = QuarantineEntry(source, position, field,
                                          f"{where} ({span.name or 'unnamed'}): {reason}", raw)
            yield position, raw, payload


def _load(path: Path) -> Any:
    """A whole-file span document; unreadable, it is one InputError naming the line."""
    data = path.read_bytes().removeprefix(decode.BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        reason = decode.invalid_utf8(exc, column).reason.split(" (")[0]
        raise InputError(f"span file {path}:{line}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"span file {path}:{exc.lineno}: not valid JSON "
                         f"({decode.json_problem(exc)})") from None
    except (RecursionError, ValueError) as exc:
        why = (f"nested more than {decode.MAX_DEPTH} levels deep"
               if isinstance(exc, RecursionError) else str(exc).split(":")[0])
        raise InputError(f"span file {path}: not readable JSON ({why})") from None


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, parsed JSON value or _Bad) per non-blank line."""
    for number, raw, defect in decode.lines(path):
        if defect is None and not raw.strip():
            continue
        value = defect or decode.parse_json(raw)
        yield number, (_Bad(value.field, value.reason, raw[:RAW_LIMIT].rstrip("\n"))
                       if isinstance(value, Defect) else value)


def _unit_spans(unit: Any) -> Iterable[tuple[dict[str, Any], dict[str, Any]] | _Bad]:
    """(span as written, span normalised) or _Bad for each item of one JSON value: OTLP
    TracesData, a list of spans, ``{"data": [...]}`` (Phoenix REST) or one span."""
    def bad(field: str, reason: str, raw: Any) -> _Bad:
        return _Bad(field, reason, json.dumps(raw, default=str)[:RAW_LIMIT])

    if isinstance(unit, _Bad):
        yield unit
        return
    if isinstance(unit, dict) and "resourceSpans" in unit:
        for resource_spans in _list(unit, "resourceSpans"):
            resource = resource_spans.get("resource") if isinstance(resource_spans, dict) else {}
            scopes = _list(resource_spans, "scopeSpans") or _list(
                resource_spans, "instrumentationLibrarySpans")
            if not isinstance(resource, dict | None) or not scopes:
                yield bad("resourceSpans", "expected a resource and scopeSpans", resource_spans)
                continue
            if decode.too_deep(resource):
                yield bad("resource", f"nested more than {decode.MAX_DEPTH} levels deep", {})
                continue
            for scope in scopes:
                for span in _list(scope, "spans"):
                    if not isinstance(span, dict):
                        yield bad("spans", "a span must be an object", span)
                    elif decode.too_deep(span):
                        yield bad("(record)", f"nested more than {decode.MAX_DEPTH} levels "
                                              "deep", {})
                    else:
                        yield span, _otlp_span(span, resource or {})
        return
    if isinstance(unit, dict) and isinstance(unit.get("data"), list):
        unit = unit["data"]
    for span in unit if isinstance(unit, list) else [unit]:
        if not isinstance(span, dict):
            yield bad("(record)", "a span must be an object", span)
        elif decode.too_deep(span):
            yield bad("(record)", f"nested more than {decode.MAX_DEPTH} levels deep", {})
        else:
            yield span, span


def _list(value: Any, key: str) -> list[Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def _otlp_span(span: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """An OTLP JSON span with its ``[{key, value: AnyValue}]`` lists turned into dicts."""
    return {**span, "attributes": _key_values(span.get("attributes")),
            "resource": {"attributes": _key_values(resource.get("attributes"))}}


def _key_values(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _any_value(value: Any) -> Any:
    """OTLP ``AnyValue`` → Python (int64 comes as a string in OTLP JSON)."""
    if not isinstance(value, dict):
        return value
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [_any_value(v) for v in _list(value["arrayValue"], "values")]
    if "kvlistValue" in value:
        return _key_values(_list(value["kvlistValue"], "values"))
    for key in ("stringValue", "doubleValue", "boolValue", "bytesValue"):
        if key in value:
            return value[key]
    return None


