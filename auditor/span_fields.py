"""What a span's fields mean: ids and times under their several spellings, the span kind, a
retrieval span as a log record payload (query, ranked documents, start time, latency) and
an LLM span's answer. ``auditor.spans`` reads the files and hands each span here normalised
(OTLP's attribute lists already turned into dicts).

Two conventions are read: OpenInference (``openinference.span.kind`` RETRIEVER and LLM,
``input.value``, ``retrieval.documents.N.document.{id,score}``) and OpenTelemetry's GenAI
semantic conventions (``gen_ai.operation.name`` ``retrieval`` with
``gen_ai.retrieval.query.text`` and ``gen_ai.retrieval.documents`` ``[{id, score}]``; an
inference operation's ``gen_ai.output.messages`` is the answer). A span carrying
``gen_ai.operation.name`` is read by the GenAI names, any other by OpenInference's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SPAN_KIND = "openinference.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"
_GENAI_KINDS = {"retrieval": "RETRIEVER", "chat": "LLM", "text_completion": "LLM",
                "generate_content": "LLM"}  # operations whose output is the answer


@dataclass(frozen=True, slots=True)
class Names:
    """Where one convention keeps a retrieval span's query and documents."""

    query: str  # attribute holding the query text
    documents: str  # prefix of the ranked documents: ``<documents>.N.<field>``
    document: str  # what follows ``N.`` in a document field's name, as quarantine names it
    missing_query: str  # why a span without query text cannot be audited


OPENINFERENCE = Names("input.value", "retrieval.documents", "document.",
                      "retriever span has no query text in input.value")
GENAI = Names("gen_ai.retrieval.query.text", "gen_ai.retrieval.documents", "",
              "retrieval span has no query text in gen_ai.retrieval.query.text (an opt-in "
              "attribute: turn content capture on in the instrumentation)")
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
    """A normalised span's kind (RETRIEVER, LLM, ...), read without flattening the whole span:
    OpenInference's kind, else the GenAI operation it stands for."""
    kind = _lookup(span, f"attributes.{SPAN_KIND}") or span.get("span_kind")
    if kind:
        return str(kind).upper()
    operation = str(_lookup(span, f"attributes.{GENAI_OPERATION}") or "").lower()
    return _GENAI_KINDS.get(operation, operation.upper())


def _names(attrs: dict[str, Any]) -> Names:
    return GENAI if GENAI_OPERATION in attrs else OPENINFERENCE


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
    names = _names(attrs)
    query = _query(attrs, names.query)
    if not query:
        return names.query, names.missing_query
    query_id = span.span_id or span.trace_id
    if not query_id:
        return "spanId", "span has neither a span id nor a trace id"
    documents = _documents(attrs, names)
    if isinstance(documents, tuple):
        return documents
    metadata = {"trace_id": span.trace_id, "span_name": span.name or None,
                "service": span.service,
                "session_id": attrs.get("session.id", attrs.get("gen_ai.conversation.id")),
                "user_id": attrs.get("user.id"), "data_source": attrs.get("gen_ai.data_source.id")}
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


def _query(attrs: dict[str, Any], key: str) -> str | None:
    """``key``'s text; a JSON input (``input.mime_type`` application/json) gives its
    ``query``/``input``/``question`` string."""
    value = attrs.get(key)
    if isinstance(value, str) and "json" in str(attrs.get("input.mime_type", "")).lower():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            value = next((parsed[k] for k in ("query", "input", "question", "query_str")
                          if isinstance(parsed.get(k), str)), value)
    return value if isinstance(value, str) and value.strip() else None


def _documents(attrs: dict[str, Any], names: Names) -> list[dict[str, Any]] | tuple[str, str]:
    """Retrieved items from ``<documents>.N.[document.]{id,score}`` (rank = N order), or the
    (field, reason) that makes them malformed."""
    prefix = names.documents
    fields = _numbered(attrs, prefix)
    if isinstance(fields, tuple):
        return fields
    items = []
    for rank, number in enumerate(sorted(fields), start=1):
        doc, where = fields[number], f"{prefix}.{number}.{names.document}"
        doc_id = doc.get("document.id", doc.get("id"))
        score = doc.get("document.score", doc.get("score"))
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id:
            return f"{where}id", f"document {number} has no id"
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            return f"{where}score", f"score {score!r} is not a number"
        items.append({"id": doc_id, "rank": rank, "score": score})
    return items


def _numbered(attrs: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]] | tuple[str, str]:
    """A list attribute's items by index, each as its flat fields: ``<prefix>.N.<field>``
    keys, or the list JSON-encoded in ``<prefix>`` (some exporters write it so), or the
    (field, reason) when it is neither."""
    whole = attrs.get(prefix)
    if isinstance(whole, str):
        try:
            attrs = {**attrs, **_flatten(json.loads(whole), prefix)}
        except json.JSONDecodeError:
            return prefix, "not a list (invalid JSON text)"
    elif whole is not None and whole != []:
        return prefix, f"expected a list, got {type(whole).__name__}"
    key = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
    fields: dict[int, dict[str, Any]] = {}
    for name, value in attrs.items():
        match = key.match(name)
        if match:
            fields.setdefault(int(match[1]), {})[match[2]] = value
    return fields


def llm_answer(attrs: dict[str, Any]) -> str | None:
    """The LLM's answer: its last output message's content, else a non-JSON ``output.value``
    (a GenAI span: the text parts of its last ``gen_ai.output.messages`` message)."""
    if GENAI_OPERATION in attrs:
        return _genai_answer(attrs)
    contents = {int(m[1]): v for k, v in attrs.items()
                if (m := re.match(r"^llm\.output_messages\.(\d+)\.message\.content$", k))}
    if contents:
        value = contents[max(contents)]
        return value if isinstance(value, str) and value.strip() else None
    value = attrs.get("output.value")
    if "json" in str(attrs.get("output.mime_type", "")).lower():
        return None
    return value if isinstance(value, str) and value.strip() else None


def _genai_answer(attrs: dict[str, Any]) -> str | None:
    messages = _numbered(attrs, "gen_ai.output.messages")
    if isinstance(messages, tuple) or not messages:
        return None
    last = messages[max(messages)]
    parts = _numbered(last, "parts")
    if isinstance(parts, tuple):
        return None
    text = "".join(str(part["content"]) for _, part in sorted(parts.items())
                   if part.get("type", "text") == "text" and isinstance(part.get("content"), str))
    return text if text.strip() else None


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
