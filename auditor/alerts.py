"""Alert delivery: a JSON message (shaped by ``auditor.alert_message``) POSTed to a webhook
with bounded retries when a nightly audit fails its gates.

The webhook URL is a secret (Slack's embeds a token in its path), so it never appears in a
log message, an error text or a returned result: every text that could hold it is scrubbed.
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
from typing import Any
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP_S = 30.0  # longest a server's Retry-After may make us wait
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
