"""What an OpenInference span's fields mean: ids and times under their several spellings,
the span kind, a RETRIEVER span as a log record payload (query, ranked documents, start
time, latency) and an LLM span's answer. ``auditor.spans`` reads the files and hands each
span here normalised (OTLP's attribute lists already turned into dicts).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

SPAN_KIND = "openinference.span.kind"
_DOC_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.(.+)$")
ID_KEYS = {  # what → the keys it may be found under, flattened
    "trace": ("traceId", "trace_id", "context.trace_id", "context.traceId"),
    "span": ("spanId", "span_id", "context.span_id", "context.spanId"),
    "start": ("startTimeUnixNano", "start_time_unix_nano", "start_time", "startTime"),
    "end": ("endTimeUnixNano", "end_time_unix_nano", "end_time", "endTime"),
    "service": ("resource.attributes.service.name", "resource.service.name"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_LIMIT = 2**63  # OTLP's int64 nanoseconds: years 1677 to 2262


class Span:
    """One span, normalised: ids, times and flat dotted attribute keys."""

    def __init__(self, span: dict[str, Any]) -> None:
        flat = _flatten(span)
        self.attributes = {k[11:]: v for k, v in flat.items() if k.startswith("attributes.")}
        self.trace_id = _first(flat, "trace")
        self.span_id = _first(flat, "span")
        self.start, self.end = _first(flat, "start"), _first(flat, "end")
        self.service = _first(flat, "service")
        self.name = str(flat.get("name") or "")


def span_kind(span: dict[str, Any]) -> str:
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
    return next((flat[key] for key in ID_KEYS[what] if flat.get(key) not in (None, "")), None)


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


def record_payload(span: Span, answer: str | None) -> dict[str, Any] | tuple[str, str]:
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


def llm_answer(attrs: dict[str, Any]) -> str | None:
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


def end_nanos(value: Any) -> int:
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
