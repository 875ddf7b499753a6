"""Alerts against a real HTTP server started in the test, and the message they carry.

The webhook URL holds a fake Slack-like token; it must never show up in a result, an
exception or a log record (httpx's own request log included).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from auditor.alert_message import alert_payload
from auditor.alerts import AlertResult, post_alert
from auditor.compare import CauseChange, Comparison, QueryChange
from auditor.config import GateKind
from auditor.gates import GateResult
from auditor.records import GateStatus
from auditor.verdict import Verdict

TOKEN_PATH = "/services/T000/B000/SECRETTOKEN"
FAST = {"backoff_s": 0.01, "timeout_s": 2.0}


class Hook:
    """A webhook that answers with the scripted statuses, then 200; records what it got."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers = list(statuses), headers or {}
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            state.received.append(json.loads(self.rfile.read(length)))
            state.paths.append(self.path)
            status = state.statuses.pop(0) if state.statuses else 200
            body = b"ok" if status == 200 else b"no_service " + self.path.encode()
            self.send_response(status)
            for key, value in state.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}{TOKEN_PATH}"
    finally:
        server.shutdown()
        server.server_close()


def _no_secret(result: AlertResult, caplog: pytest.LogCaptureFixture) -> None:
    texts = [repr(result), *(r.getMessage() for r in caplog.records)]
    for text in texts:
        assert "SECRETTOKEN" not in text and TOKEN_PATH not in text, text


def test_delivers_the_json_payload(hook: tuple[Hook, str], caplog: pytest.LogCaptureFixture
                                   ) -> None:
    caplog.set_level(logging.DEBUG)
    state, url = hook
    result = post_alert(url, {"text": "hello"}, **FAST)
    assert result == AlertResult(True, 1, 200, None)
    assert state.received == [{"text": "hello"}] and state.paths == [TOKEN_PATH]
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx logged it...
    _no_secret(result, caplog)  # ...without the URL


def test_server_errors_are_retried_until_delivered(hook: tuple[Hook, str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state, url = hook
    state.statuses = [500, 503]
    result = post_alert(url, {"text": "x"}, **FAST)
    assert (result.delivered, result.attempts, result.status) == (True, 3, 200)
    assert len(state.received) == 3
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
    _no_secret(result, caplog)


def test_429_honours_retry_after(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.statuses, state.headers = [429], {"Retry-After": "0"}
    result = post_alert(url, {"text": "x"}, retries=1, backoff_s=30.0, timeout_s=2.0)
    assert (result.delivered, result.attempts) == (True, 2)  # waited 0 s, not 30 s


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_retry_after_falls_back_to_backoff(hook: tuple[Hook, str], value: str
                                                        ) -> None:
    state, url = hook
    state.statuses, state.headers = [503], {"Retry-After": value}
    result = post_alert(url, {"text": "x"}, retries=1, **FAST)
    assert (result.delivered, result.attempts) == (True, 2)


def test_client_errors_are_not_retried(hook: tuple[Hook, str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state, url = hook
    state.statuses = [400]
    result = post_alert(url, {"text": "x"}, **FAST)
    assert (result.delivered, result.attempts, result.status) == (False, 1, 400)
    assert len(state.received) == 1
    assert result.error and result.error.startswith("HTTP 400: no_service <webhook>")
    _no_secret(result, caplog)


def test_persistent_server_errors_give_up(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.statuses = [502] * 10
    result = post_alert(url, {"text": "x"}, retries=2, **FAST)
    assert (result.delivered, result.attempts, result.status) == (False, 3, 502)
    assert result.error and result.error.startswith("gave up after 3 attempt(s): HTTP 502")
    assert len(state.received) == 3


def test_unreachable_webhook_fails_after_bounded_attempts(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{TOKEN_PATH}"
    result = post_alert(url, {"text": "x"}, retries=2, **FAST)
    assert (result.delivered, result.attempts, result.status) == (False, 3, None)
    assert result.error and "ConnectError" in result.error
    _no_secret(result, caplog)


def test_a_bad_url_is_reported_without_echoing_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = post_alert(f"ftp://example.invalid{TOKEN_PATH}", {"text": "x"}, **FAST)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.error and "not a valid http(s) URL" in result.error
    _no_secret(result, caplog)


# the message ----------------------------------------------------------------------------
def _comparison(**given: Any) -> Comparison:
    empty: dict[str, Any] = {
        "baseline_run_id": "20261031T020000Z-def456", "run_id": "20261101T020000Z-abc123",
        "shared_queries": 0, "only_baseline": 0, "only_current": 0, "alpha": 0.05,
        "metrics": [], "regressed": [], "improved": [], "regressed_total": 0,
        "improved_total": 0, "new_causes": [], "resolved_causes": [], "cause_counts": [],
        "drift": {}}
    return Comparison(**{**empty, **given})


def _gate(name: str, status: GateStatus, reason: str, kind: GateKind = "min") -> GateResult:
    return GateResult(name, name.split()[0], kind, status, None, 0.5, None, reason)


def _verdict() -> Verdict:
    regressed = [QueryChange(query_id=f"q{i}", query=f"<!channel> query *{i}*\nsecond line",
                             metric="recall@10", baseline=1.0, current=0.5, delta=-0.5)
                 for i in range(12)]
    comparison = _comparison(
        regressed=regressed, regressed_total=31,
        # the listed pairs are capped; the counts are over all of them
        new_causes=[CauseChange("q1", "not_indexed", "d1"), CauseChange("q2", "not_indexed", "d2")],
        new_causes_total=40,
        new_cause_counts=[{"cause": "not_indexed", "queries": 37},
                          {"cause": "drifted", "queries": 3}])
    gates = (_gate("recall@10 max_drop", "failed", "recall@10 dropped 0.120 (> 0.05, p=0.003)",
                   "max_drop"),
             _gate("ndcg@10 min", "passed", "ok"),
             _gate("mrr@10 min", "failed", "mrr@10 0.41 < 0.50"))
    return Verdict("20261101T020000Z-abc123", "complete", "20261031T020000Z-def456",
                   comparison, gates,
                   reports={"markdown": Path("/r/summary.md"), "junit": Path("/r/junit.xml")})


def test_payload_is_slack_compatible_and_structured() -> None:
    payload = alert_payload(_verdict())
    assert payload["text"] == (
        "Retrieval audit 20261101T020000Z-abc123 failed 2 gate(s): "
        "recall@10 dropped 0.120 (&gt; 0.05, p=0.003); mrr@10 0.41 &lt; 0.50")
    facts = payload["auditor"]
    assert facts["failed_gates"] == [
        {"gate": "recall@10 max_drop", "reason": "recall@10 dropped 0.120 (> 0.05, p=0.003)"},
        {"gate": "mrr@10 min", "reason": "mrr@10 0.41 < 0.50"}]
    assert len(facts["regressed"]) == 10 and facts["regressed_total"] == 31
    assert facts["regressed"][0] == {"query_id": "q0", "metric": "recall@10", "delta": -0.5}
    assert facts["new_causes"] == {"not_indexed": 37}  # drift is no failure cause
    assert facts["baseline_run_id"] == "20261031T020000Z-def456"
    assert facts["reports"] == {"markdown": "/r/summary.md", "junit": "/r/junit.xml"}
    json.dumps(payload)  # JSON-safe
    blocks = payload["blocks"]
    assert all(b["type"] in ("section", "context") for b in blocks)
    queries = next(b["text"]["text"] for b in blocks if "regressed" in b.get("text", {})
                   .get("text", ""))
    assert "<!channel>" not in queries and "&lt;!channel&gt;" in queries  # no mentions
    assert "\nsecond line" not in queries and "-0.500" in queries
    causes = next(b["text"]["text"] for b in blocks if "New causes" in b.get("text", {})
                  .get("text", ""))
    assert "• not_indexed: 37" in causes and "drifted" not in causes
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if "text" in b)


def test_payload_without_comparison_or_reports() -> None:
    passed = Verdict("r1", "complete", None, None, ())
    assert alert_payload(passed)["text"] == "Retrieval audit r1 passed its gates"
    failed = alert_payload(replace(passed, status="failed", status_reason="ES down"))
    assert failed["text"] == "Retrieval audit r1 is failed: ES down"
    assert failed["auditor"]["regressed"] == [] and failed["auditor"]["reports"] == {}
    assert failed["auditor"]["regressed_total"] == 0
    long = alert_payload(replace(passed, gates=(_gate("g", "failed", "x" * 2000),)))
    assert len(long["text"]) <= 500 and long["text"].endswith("…")


def test_not_evaluated_gates_are_no_failure_unless_required() -> None:
    verdict = Verdict("r1", "complete", None, None,
                      (_gate("recall@10 drop", "not_evaluated",
                             "recall@10 not evaluated (first run)", "max_drop"),),
                      baseline_reason="first run: nothing to compare with")
    lenient = alert_payload(verdict)["auditor"]
    assert lenient["failed_gates"] == [] and lenient["gate_status"] == "not_evaluated"
    strict = alert_payload(replace(verdict, require_baseline=True))
    assert [g["gate"] for g in strict["auditor"]["failed_gates"]] == ["recall@10 drop"]
    assert "first run: nothing to compare with" in json.dumps(strict["blocks"])
