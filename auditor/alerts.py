"""Alerts: a Slack-compatible JSON message when a nightly audit fails its gates, POSTed to
a webhook with bounded retries.

The webhook URL is a secret (Slack's embeds a token in its path), so it never appears in a
log message, an error text or a returned result: every text that could hold it is scrubbed.
Query texts in a message are untrusted (users typed them): they are escaped and truncated.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from auditor.diagnose import DRIFT

if TYPE_CHECKING:
    from auditor.compare import QueryChange
    from auditor.verdict import Verdict

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP_S = 30.0  # longest a server's Retry-After may make us wait
MAX_REGRESSED = 10
QUERY_CHARS = 80
TEXT_CHARS = 500
SECTION_CHARS = 2_900  # Slack's section text limit is 3,000
REDACTED = "<webhook>"


@dataclass(frozen=True)
class AlertResult:
    """What happened to one alert. ``error`` never holds the webhook URL."""

    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status, None when no response came back
    error: str | None


# delivery --------------------------------------------------------------------------------
def post_alert(
    url: str,
    payload: dict[str, Any],
    *,
    retries: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 10.0,
) -> AlertResult:
    """POST ``payload`` as JSON to ``url``; at most ``1 + retries`` attempts.

    Connection errors, timeouts, 429 and 5xx are retried after ``backoff_s * 2**n`` seconds
    with jitter (or the server's Retry-After, capped at 30 s); other statuses are final.
    Never raises for a delivery failure: the result says what happened.
    """
    secrets = _secrets(url)
    body = json.dumps(payload).encode()
    status: int | None = None
    error: str | None = None
    attempt = 0
    with _redacting(secrets), httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for attempt in range(1, retries + 2):
            wait: float | None = None
            try:
                response = client.post(url, content=body,
                                        headers={"Content-Type": "application/json"})
            except (httpx.UnsupportedProtocol, httpx.InvalidURL, ValueError):
                return AlertResult(False, attempt, None, "the webhook URL is not a valid http(s) "
                                   "URL: check the webhook_url setting")
            except httpx.TransportError as exc:  # connection refused, timeouts, DNS, TLS
                status, error = None, _scrub(f"{type(exc).__name__}: {exc}", secrets)
            else:
                status = response.status_code
                if response.is_success:
                    return AlertResult(True, attempt, status, None)
                error = _scrub(f"HTTP {status}: {response.text[:200]}", secrets).strip()
                if status != 429 and status < 500:
                    logger.warning("alert rejected (%s); not retrying", error)
                    return AlertResult(False, attempt, status, error)
                wait = _retry_after(response.headers.get("Retry-After"))
            if attempt > retries:
                break
            delay = wait if wait is not None else _backoff(backoff_s, attempt)
            logger.warning("alert attempt %d of %d failed (%s); retrying in %.2f s",
                           attempt, retries + 1, error, delay)
            time.sleep(delay)
    reason = f"gave up after {attempt} attempt(s): {error}"
    logger.warning("alert not delivered: %s", reason)
    return AlertResult(False, attempt, status, reason)


def _backoff(base_s: float, attempt: int) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**(attempt-1)``."""
    ceiling = base_s * 2 ** (attempt - 1)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):  # "nan", "inf": no usable hint, back off as usual
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def _secrets(url: str) -> list[str]:
    """Every text of ``url`` that could leak its token, longest first: the URL as given and
    as httpx normalises it, its path and query, and each token-like path segment."""
    parts = urlsplit(url)
    found = {url, url.rstrip("/"), parts.path, parts.query, parts.path + "?" + parts.query}
    with suppress(httpx.InvalidURL, TypeError, ValueError):
        found.add(str(httpx.URL(url)))
    found.update(segment for segment in parts.path.split("/")
                 if len(segment) >= 8 and not segment.islower())  # token-like segments
    return sorted((s for s in found if s and s not in ("/", "?")), key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _Redact(logging.Filter):
    """Scrubs the webhook from records of httpx's logger (it logs every request's URL).
    httpcore's loggers log hosts and ports, never the path that holds the token."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _scrub(record.getMessage(), self.secrets), None
        return True


@contextmanager
def _redacting(secrets: list[str]) -> Iterator[None]:
    # A filter sees only the records logged on its own logger, not on its children's:
    # httpx logs each request on "httpx" itself.
    httpx_logger = logging.getLogger("httpx")
    redact = _Redact(secrets)
    httpx_logger.addFilter(redact)
    try:
        yield
    finally:
        httpx_logger.removeFilter(redact)


# the message -----------------------------------------------------------------------------
def alert_payload(verdict: Verdict) -> dict[str, Any]:
    """A Slack-compatible alert body for one verdict: ``text`` (one plain line), ``blocks``
    (mrkdwn sections) and ``auditor`` (the same facts, structured, for other consumers).

    The failed gates are the verdict's (the not evaluated ones too with
    ``require_baseline``); of the comparison, the first regressed queries, their total and
    the queries per new cause (drift is no failure cause, so it is left out).
    """
    comparison = verdict.comparison
    failed = [g for g in verdict.gates if g.status == "failed"]
    if verdict.require_baseline:  # the team asked for a not-evaluated gate to fail
        failed += verdict.not_evaluated
    regressed = list(comparison.regressed[:MAX_REGRESSED]) if comparison else []
    baseline = verdict.baseline_run_id or (comparison.baseline_run_id if comparison else None)
    facts = {
        "run_id": verdict.run_id, "status": verdict.status, "baseline_run_id": baseline,
        "gate_status": verdict.gate_status,
        "baseline_reason": verdict.baseline_reason,
        "warnings": list(verdict.warnings),
        "failed_gates": [{"gate": g.gate, "reason": g.reason} for g in failed],
        "regressed": [{"query_id": q.query_id, "metric": q.metric, "delta": q.delta}
                      for q in regressed],
        "regressed_total": comparison.regressed_total if comparison else 0,
        "new_causes": {str(c["cause"]): c["queries"] for c in
                       (comparison.new_cause_counts if comparison else []) if c["cause"] != DRIFT},
        "reports": {kind: str(path) for kind, path in verdict.reports.items()},
    }
    text = _headline(facts, verdict.status_reason)
    return {"text": text, "blocks": _blocks(facts, text, regressed), "auditor": facts}


def _headline(facts: dict[str, Any], status_reason: Any) -> str:
    run, gates = facts["run_id"], facts["failed_gates"]
    if gates:
        reasons = "; ".join(g["reason"] or g["gate"] for g in gates)
        line = f"Retrieval audit {run} failed {len(gates)} gate(s): {reasons}"
    elif facts["status"] in ("failed", "partial"):
        line = f"Retrieval audit {run} is {facts['status']}: {status_reason or 'see the report'}"
    else:
        line = f"Retrieval audit {run} passed its gates"
    return _escape(_truncate(_one_line(line), TEXT_CHARS))


def _blocks(facts: dict[str, Any], text: str, regressed: list[QueryChange]
            ) -> list[dict[str, Any]]:
    def section(body: str) -> dict[str, Any]:
        return {"type": "section",
                "text": {"type": "mrkdwn", "text": _truncate(body, SECTION_CHARS)}}

    baseline = facts["baseline_run_id"]
    head = f"*Run* `{_code(facts['run_id'])}` ({_escape(facts['status'])})" + (
        f" vs baseline `{_code(str(baseline))}`" if baseline else "")
    blocks = [section(f"{text}\n{head}")]
    if facts["failed_gates"]:
        blocks.append(section("*Failed gates*\n" + "\n".join(
            f"• {_escape(g['gate'])}: {_escape(_one_line(g['reason']))}"
            for g in facts["failed_gates"])))
    if regressed:
        lines = [f"• `{_code(q.query_id)}` {_escape(q.metric)} {_delta(q.delta)}: "
                 f"{_untrusted(q.query)}" for q in regressed]
        blocks.append(section(f"*Top regressed queries* ({facts['regressed_total']} in all)\n"
                              + "\n".join(lines)))
    notes = ([facts["baseline_reason"]] if facts["baseline_reason"] and not baseline else []) \
        + facts["warnings"]
    if notes:
        blocks.append(section("*Note*\n" + "\n".join(
            f"• {_escape(_one_line(line))}" for line in notes)))
    if facts["new_causes"]:
        blocks.append(section("*New causes*\n" + "\n".join(
            f"• {_escape(cause)}: {count}" for cause, count in facts["new_causes"].items())))
    if facts["reports"]:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(
            "Reports: " + ", ".join(f"{_escape(k)} `{_code(v)}`"
                                    for k, v in facts["reports"].items()), SECTION_CHARS)}]})
    return blocks


def _escape(text: str) -> str:
    """Slack's three control characters; stops untrusted text from forming links/mentions."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _untrusted(text: Any) -> str:
    """A user's query for a message: one line, truncated, escaped."""
    return _escape(_truncate(_one_line(str(text or "")), QUERY_CHARS))


def _code(text: str) -> str:
    """Text inside backticks: escaped, and with no backtick to break out of the code span."""
    return _escape(_one_line(text)).replace("`", "'")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _delta(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, int | float) else "?"
