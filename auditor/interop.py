"""Interchange with other tools: TREC run and qrels files out of the store, and OpenInference
retriever spans (OTLP JSON or Phoenix-style span JSON) in, as a query log.

TREC export lets any trec_eval-compatible tool check our numbers. Span import lets a team
that traces its RAG app with OpenInference audit what it logged without writing a JSONL log:
each RETRIEVER span becomes one ``LogRecord``; other spans are skipped (LLM spans lend their
output to the retriever spans of their trace as the answer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from auditor.logs import RAW_LIMIT, InputError, Skipped
from auditor.records import QuarantineEntry
from auditor.store import Store, StoreError

Level = Literal["doc", "chunk"]
SpanLayout = Literal["lines", "document"]


class ExportError(Exception):
    """A run cannot be written in TREC format (an id holds whitespace)."""


# TREC export -----------------------------------------------------------------------------
# trec_eval ignores the rank column: it sorts by score (descending), ties by doc id
# (descending), and holds scores as C floats. A query whose scores are not strictly
# decreasing in our rank order at single precision gets scores derived from rank instead
# (n - rank + 1), so any TREC tool sees our ranking; other queries keep their hit scores.
_RUN_SQL = """
WITH firsts AS (
    SELECT seq, query_id, {id} AS doc_id, rank, score FROM hits WHERE run_id = {run}
    QUALIFY row_number() OVER (PARTITION BY seq, {id} ORDER BY rank) = 1
), renumbered AS (
    SELECT seq, query_id, doc_id, score,
           row_number() OVER (PARTITION BY seq ORDER BY rank) AS new_rank,
           count(*) OVER (PARTITION BY seq) AS n,
           coalesce(score::FLOAT < lag(score::FLOAT) OVER (PARTITION BY seq ORDER BY rank), true)
               AS below
    FROM firsts
), checked AS (
    SELECT *, bool_and(below) OVER (PARTITION BY seq) AS strict FROM renumbered
)
SELECT query_id, 'Q0', doc_id, new_rank,
       CASE WHEN strict THEN score ELSE (n - new_rank + 1)::DOUBLE END, {tag}
FROM checked ORDER BY seq, new_rank
"""
_QRELS_SQL = """
SELECT query_id, 0, doc_id, relevance FROM judgments WHERE run_id = {run}
ORDER BY query_id, doc_id
"""
_SPACED_SQL = """
SELECT query_id, {id} FROM hits WHERE run_id = {run}
  AND (regexp_matches(query_id, '\\s') OR regexp_matches({id}, '\\s')) LIMIT 1
"""
_COPY = "COPY ({query}) TO {path} (FORMAT csv, DELIMITER ' ', HEADER false, QUOTE '')"


def export_trec(
    store: Store,
    run_id: str,
    run_path: Path,
    qrels_path: Path | None = None,
    *,
    level: Level | None = None,
    tag: str | None = None,
) -> tuple[int, int]:
    """Write a stored run as a TREC run file (``qid Q0 docid rank score tag``) and its
    judgments as TREC qrels (``qid 0 docid rel``); returns (run lines, qrels lines).

    ``level`` defaults to the run's own level: at ``doc`` each document is written once, at
    its best rank, and ranks are renumbered 1..n. ``tag`` defaults to the run id. Scores are
    the hit scores unless a query's scores tie (see the comment above ``_RUN_SQL``).
    """
    tag = tag or run_id
    if not tag or any(ch.isspace() for ch in tag):
        raise ExportError(f"TREC run tag {tag!r} must be one word")
    with store.connect(read_only=True) as con:
        row = con.execute("SELECT level FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {store.path}: list runs with `auditor runs`")
        column = "doc_id" if (level or row[0]) == "doc" else "chunk_id"
        run = _literal(run_id)
        spaced = con.execute(_SPACED_SQL.format(id=column, run=run)).fetchone()
        if spaced is not None:
            raise ExportError(f"run {run_id}: query {spaced[0]!r} / id {spaced[1]!r} holds "
                              "whitespace, which a TREC file cannot represent")
        query = _RUN_SQL.format(id=column, run=run, tag=_literal(tag))
        written = _copy(con, query, run_path)
        judged = _copy(con, _QRELS_SQL.format(run=run), qrels_path) if qrels_path else 0
    return written, judged


def _copy(con: Any, query: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    row = con.execute(_COPY.format(query=query, path=_literal(str(path)))).fetchone()
    return int(row[0]) if row else 0


def _literal(text: str) -> str:
    """A SQL string literal (COPY takes no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


# OpenInference spans ---------------------------------------------------------------------
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


def span_layout(path: Path) -> SpanLayout | None:
    """How a ``.json``/``.jsonl`` file holds spans, or None when it is an ordinary log.

    The first non-blank line decides. ``lines``: it is a JSON object with ``resourceSpans``
    (an OTLP file exporter line), a span (``attributes`` plus trace/span ids and no
    ``query``), or an array or ``{"data": [...]}`` whose first item is a span. ``document``:
    the line is not JSON by itself but opens an object or array, and the first 64 KiB name
    ``resourceSpans``, ``openinference.span.kind`` or ``span_kind`` (a pretty-printed export).
    """
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
        if not first:
            return None
        try:
            value = json.loads(first)
        except json.JSONDecodeError:
            handle.seek(0)
            opens = first.lstrip().startswith(("{", "["))
            return "document" if opens and _MARKS.search(handle.read(_HEAD)) else None
    return "lines" if _holds_spans(value) else None


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


def read_spans(path: Path, layout: SpanLayout) -> Iterator[tuple[int, str, Any]]:
    """(position, raw span, record payload | Skipped | QuarantineEntry) per span, for
    ``read_log``. Position is the line (``lines``) or the 1-based span index (``document``).

    Two passes: the first collects each trace's answer (its last LLM span's output), the
    second turns RETRIEVER spans into log record payloads.
    """
    answers: dict[str, tuple[int, str]] = {}
    for item in _spans(path, layout):
        if isinstance(item, _Span) and item.kind == "LLM" and item.trace_id:
            answer = _answer(item.attributes)
            end = _safe_nanos(item.end)
            if answer and end >= answers.get(item.trace_id, (-1, ""))[0]:
                answers[item.trace_id] = (end, answer)
    for item in _spans(path, layout):
        if isinstance(item, QuarantineEntry):
            yield item.line, item.raw, item
        elif item.kind != "RETRIEVER":
            yield item.position, item.raw, Skipped(item.kind or "(no span kind)")
        else:
            answer = answers.get(item.trace_id or "", (0, None))[1]
            yield item.position, item.raw, _payload(str(path), item, answer)


class _Span:
    """One span, normalised: ids, times and flat dotted attribute keys."""

    def __init__(self, position: int, index: int, raw: str, span: dict[str, Any]) -> None:
        flat = _flatten(span)
        self.position, self.index, self.raw = position, index, raw[:RAW_LIMIT]
        self.attributes = {k[11:]: v for k, v in flat.items() if k.startswith("attributes.")}
        self.trace_id = _first(flat, "trace")
        self.span_id = _first(flat, "span")
        self.start, self.end = _first(flat, "start"), _first(flat, "end")
        self.service = _first(flat, "service")
        self.name = str(flat.get("name") or "")
        kind = self.attributes.get(SPAN_KIND) or flat.get("span_kind") or ""
        self.kind = str(kind).upper()


def _first(flat: dict[str, Any], what: str) -> Any:
    return next((flat[key] for key in _ID_KEYS[what] if flat.get(key) not in (None, "")), None)


def _spans(path: Path, layout: SpanLayout) -> Iterator[_Span | QuarantineEntry]:
    index = 0
    for line, unit in _units(path, layout):
        if isinstance(unit, QuarantineEntry):
            yield unit
            continue
        for span, resource in _unit_spans(str(path), line, unit):
            if isinstance(span, QuarantineEntry):
                yield span
                continue
            index += 1
            position = line if layout == "lines" else index
            raw = json.dumps(span, default=str)
            yield _Span(position, index, raw,
                        span if resource is None else _otlp_span(span, resource))


def _units(path: Path, layout: SpanLayout) -> Iterator[tuple[int, Any]]:
    """(line, parsed JSON value) per line, or (0, the whole file) for a document."""
    if layout == "document":
        try:
            yield 0, json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column "
                             f"{exc.colno})") from None
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, QuarantineEntry(str(path), number, "(record)",
                                              f"invalid JSON: {exc.msg} at column {exc.colno}",
                                              raw[:RAW_LIMIT].rstrip("\n"))


def _unit_spans(source: str, line: int, unit: Any
                ) -> Iterator[tuple[dict[str, Any] | QuarantineEntry, dict[str, Any] | None]]:
    """(span, OTLP resource or None) for each span of one JSON value: OTLP TracesData, a
    list of spans, ``{"data": [...]}`` (Phoenix REST) or one span."""
    def bad(field: str, reason: str, raw: Any) -> tuple[QuarantineEntry, None]:
        text = json.dumps(raw, default=str)[:RAW_LIMIT]
        return QuarantineEntry(source, line, field, reason, text), None

    if isinstance(unit, dict) and "resourceSpans" in unit:
        for resource_spans in _list(unit, "resourceSpans"):
            resource = resource_spans.get("resource") if isinstance(resource_spans, dict) else {}
            scopes = _list(resource_spans, "scopeSpans") or _list(
                resource_spans, "instrumentationLibrarySpans")
            if not isinstance(resource, dict | None) or not scopes:
                yield bad("resourceSpans", "expected a resource and scopeSpans", resource_spans)
                continue
            for scope in scopes:
                for span in _list(scope, "spans"):
                    yield ((span, resource or {}) if isinstance(span, dict)
                           else bad("spans", "a span must be an object", span))
        return
    if isinstance(unit, dict) and isinstance(unit.get("data"), list):
        unit = unit["data"]
    for span in unit if isinstance(unit, list) else [unit]:
        yield (span, None) if isinstance(span, dict) else bad(
            "(record)", "a span must be an object", span)


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
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _key_values((value["kvlistValue"] or {}).get("values"))
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


def _payload(source: str, span: _Span, answer: str | None) -> dict[str, Any] | QuarantineEntry:
    """A retriever span as a log record payload, or why it cannot be one."""
    def bad(field: str, reason: str) -> QuarantineEntry:
        return QuarantineEntry(source, span.position, field,
                               f"span {span.index} ({span.name or 'unnamed'}): {reason}", span.raw)

    attrs = span.attributes
    query = _query(attrs)
    if not query:
        return bad("input.value", "retriever span has no query text in input.value")
    query_id = span.span_id or span.trace_id
    if not query_id:
        return bad("spanId", "span has neither a span id nor a trace id")
    documents = _documents(attrs)
    if isinstance(documents, tuple):
        return bad(*documents)
    times = []
    for field, value in (("startTimeUnixNano", span.start), ("endTimeUnixNano", span.end)):
        try:
            times.append(_nanos_or_none(value))
        except ValueError as exc:
            return bad(field, str(exc))
    start, end = times
    metadata = {"trace_id": span.trace_id, "span_name": span.name or None,
                "service": span.service, "session_id": attrs.get("session.id"),
                "user_id": attrs.get("user.id")}
    payload: dict[str, Any] = {
        "query_id": str(query_id), "query": query, "retrieved": documents,
        "metadata": {key: value for key, value in metadata.items() if value is not None},
    }
    if start is not None:
        payload["timestamp"] = _EPOCH + timedelta(microseconds=start // 1000)
        if end is not None:
            payload["latency_ms"] = (end - start) / 1e6
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
    ISO 8601 text, or a number whose unit is read from its size (s, ms, µs or ns)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is not a timestamp")
    if isinstance(value, int | float):
        scale = next(s for bound, s in ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3),
                                        (float("inf"), 1)) if abs(value) < bound)
        return int(value * scale)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"time {value!r} is not ISO 8601 or a number") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
