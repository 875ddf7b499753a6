"""OpenInference retriever spans (OTLP JSON or Phoenix-style span JSON) read as a query log.

A team that traces its RAG app with OpenInference can audit what it logged without writing a
JSONL log: each RETRIEVER span becomes one ``LogRecord``; other spans are skipped (LLM spans
lend their output to the retriever spans of their trace as the answer). ``auditor.logs``
calls ``read_spans`` for every ``.json``/``.jsonl``/``.ndjson`` log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from auditor import decode
from auditor.decode import RAW_LIMIT, Defect, Skipped
from auditor.errors import InputError
from auditor.records import QuarantineEntry

SpanLayout = Literal["lines", "document"]

SPAN_KIND = "openinference.span.kind"
_MARKS = re.compile(r'"(resourceSpans|openinference\.span\.kind|span_kind)"')
_HEAD = 65_536
_DOC_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.(.+)$")
_ID_KEYS = {
    "trace": ("traceId", "trace_id", "context.trace_id", "context.traceId"),
    "span": ("spanId", "span_id", "context.span_id", "context.spanId"),
    "start": ("startTimeUnixNano", "start_time_unix_nano", "start_time", "startTime"),
    "end": ("endTimeUnixNano", "end_time_unix_nano", "end_time", "endTime"),
    "service": ("resource.attributes.service.name", "resource.service.name"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_LIMIT = 2**63  # OTLP's int64 nanoseconds: years 1677 to 2262


def span_layout(path: Path) -> SpanLayout | None:
    """How a ``.json``/``.jsonl`` file holds spans, or None when it is an ordinary log.

    The first non-blank line decides. When it is JSON holding spans (an object with
    ``resourceSpans``, a span — ``attributes`` plus trace/span ids and no ``query`` — or an
    array or ``{"data": [...]}`` whose first item is a span) the layout is ``lines``, or
    ``document`` when no other non-blank line follows (a minified export). When it is not
    JSON by itself but opens an object or array and the first 64 KiB name ``resourceSpans``,
    ``openinference.span.kind`` or ``span_kind``, it is ``document`` (a pretty-printed export).
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
    ids = _ID_KEYS["trace"] + _ID_KEYS["span"] + ("context",)
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
            if not isinstance(item, _Bad) and _kind(item[1]) == "LLM":
                span = _Span(item[1])
                answer = _answer(span.attributes)
                end = _safe_nanos(span.end)
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
            kind = _kind(normalised)
            if kind != "RETRIEVER":
                yield position, "", Skipped(kind or "(no span kind)")
                continue
            span = _Span(normalised)
            raw = json.dumps(original, default=str)[:RAW_LIMIT]
            answer = answers.get(span.trace_id or "", (0, None))[1]
            payload = _payload(span, answer)
            if isinstance(payload, tuple):
                where = f"span {index}" + (f" on line {line}" if layout == "lines" else "")
                field, reason = payload
                payload = QuarantineEntry(source, position, field,
                                          f"{where} ({span.name or 'unnamed'}): {reason}", raw)
            yield position, raw, payload


class _Span:
    """One span, normalised: ids, times and flat dotted attribute keys."""

    def __init__(self, span: dict[str, Any]) -> None:
        flat = _flatten(span)
        self.attributes = {k[11:]: v for k, v in flat.items() if k.startswith("attributes.")}
        self.trace_id = _first(flat, "trace")
        self.span_id = _first(flat, "span")
        self.start, self.end = _first(flat, "start"), _first(flat, "end")
        self.service = _first(flat, "service")
        self.name = str(flat.get("name") or "")


def _kind(span: dict[str, Any]) -> str:
    """A normalised span's kind, read without flattening the whole span."""
    return str(_lookup(span, f"attributes.{SPAN_KIND}") or span.get("span_kind") or "").upper()


def _lookup(value: Any, path: str) -> Any:
    """``value`` at a dotted path whose dots may separate nested keys or sit inside a key."""
    if not path:
        return value
    if not isinstance(value, dict):
        return None
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in value:
            found = _lookup(value[key], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def _first(flat: dict[str, Any], what: str) -> Any:
    return next((flat[key] for key in _ID_KEYS[what] if flat.get(key) not in (None, "")), None)


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


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists → dotted keys (``retrieval.documents.0.document.id``), the
    flat form OpenInference attributes take on the wire. Empty containers stay as values."""
    if isinstance(value, dict) and value:
        items: Any = value.items()
    elif isinstance(value, list) and value:
        items = enumerate(value)
    else:
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, item in items:
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _payload(span: _Span, answer: str | None) -> dict[str, Any] | tuple[str, str]:
    """A retriever span as a log record payload, or the (field, reason) it cannot be one."""
    attrs = span.attributes
    query = _query(attrs)
    if not query:
        return "input.value", "retriever span has no query text in input.value"
    query_id = span.span_id or span.trace_id
    if not query_id:
        return "spanId", "span has neither a span id nor a trace id"
    documents = _documents(attrs)
    if isinstance(documents, tuple):
        return documents
    metadata = {"trace_id": span.trace_id, "span_name": span.name or None,
                "service": span.service, "session_id": attrs.get("session.id"),
                "user_id": attrs.get("user.id")}
    payload: dict[str, Any] = {
        "query_id": str(query_id), "query": query, "served": documents,
        "metadata": {key: value for key, value in metadata.items() if value is not None},
    }
    try:
        start = _nanos_or_none(span.start)
        if start is not None:
            payload["logged_at"] = _EPOCH + timedelta(microseconds=start // 1000)
    except ValueError as exc:
        return "startTimeUnixNano", str(exc)
    try:
        end = _nanos_or_none(span.end)
    except ValueError as exc:
        return "endTimeUnixNano", str(exc)
    if start is not None and end is not None:
        payload["served_latency_ms"] = (end - start) / 1e6
    if answer:
        payload["answer"] = answer
    return payload


def _query(attrs: dict[str, Any]) -> str | None:
    """``input.value``; a JSON input (``input.mime_type`` application/json) gives its
    ``query``/``input``/``question`` string."""
    value = attrs.get("input.value")
    if isinstance(value, str) and "json" in str(attrs.get("input.mime_type", "")).lower():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            value = next((parsed[k] for k in ("query", "input", "question", "query_str")
                          if isinstance(parsed.get(k), str)), value)
    return value if isinstance(value, str) and value.strip() else None


def _documents(attrs: dict[str, Any]) -> list[dict[str, Any]] | tuple[str, str]:
    """Retrieved items from ``retrieval.documents.N.document.{id,score}`` (rank = N order),
    or the (field, reason) that makes them malformed."""
    whole = attrs.get("retrieval.documents")
    if isinstance(whole, str):  # some exporters JSON-encode the list
        try:
            attrs = {**attrs, **_flatten(json.loads(whole), "retrieval.documents")}
        except json.JSONDecodeError:
            return "retrieval.documents", "not a list of documents (invalid JSON text)"
    elif whole is not None and whole != []:
        return "retrieval.documents", f"expected a list of documents, got {type(whole).__name__}"
    fields: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _DOC_KEY.match(key)
        if match:
            fields.setdefault(int(match[1]), {})[match[2]] = value
    items = []
    for rank, number in enumerate(sorted(fields), start=1):
        doc, where = fields[number], f"retrieval.documents.{number}.document"
        doc_id = doc.get("document.id", doc.get("id"))  # or GenAI's {"id", "score"}
        score = doc.get("document.score", doc.get("score"))
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id:
            return f"{where}.id", f"document {number} has no id"
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            return f"{where}.score", f"score {score!r} is not a number"
        items.append({"id": doc_id, "rank": rank, "score": score})
    return items


def _answer(attrs: dict[str, Any]) -> str | None:
    """The LLM's answer: its last output message's content, else a non-JSON ``output.value``."""
    contents = {int(m[1]): v for k, v in attrs.items()
                if (m := re.match(r"^llm\.output_messages\.(\d+)\.message\.content$", k))}
    if contents:
        value = contents[max(contents)]
        return value if isinstance(value, str) and value.strip() else None
    value = attrs.get("output.value")
    if "json" in str(attrs.get("output.mime_type", "")).lower():
        return None
    return value if isinstance(value, str) and value.strip() else None


def _safe_nanos(value: Any) -> int:
    """For ordering LLM spans: a bad or missing end time sorts first."""
    try:
        return _nanos_or_none(value) or 0
    except ValueError:
        return 0


def _nanos_or_none(value: Any) -> int | None:
    """A span time as nanoseconds since the epoch: OTLP's ``*UnixNano`` (number or string),
    ISO 8601 text, or a number whose unit is read from its size (s, ms, µs or ns). A time
    that is not finite or lies outside int64 nanoseconds (years 1677 to 2262) is a
    ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is not a timestamp")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"time {value!r} is not a finite number")
    if isinstance(value, int | float):
        scale = next(s for bound, s in ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3),
                                        (float("inf"), 1)) if abs(value) < bound)
        nanos = int(value * scale)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"time {value!r} is not ISO 8601 or a number") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if abs(nanos) >= _NANOS_LIMIT:
        raise ValueError(f"time {value!r} is out of range (years 1677 to 2262)")
    return nanos
