"""The alert message: a Slack-compatible JSON body for a verdict that failed its gates
(``auditor.alerts`` delivers it).

Query texts in a message are untrusted (users typed them): they are escaped and truncated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.cases import DRIFT
from auditor.numerals import fixed

if TYPE_CHECKING:
    from auditor.compare import QueryChange
    from auditor.verdict import Verdict

MAX_REGRESSED = 10
QUERY_CHARS = 80
TEXT_CHARS = 500
SECTION_CHARS = 2_900  # Slack's section text limit is 3,000


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
        lines = [f"• `{_code(q.query_id)}` {_escape(q.metric)} "
                 f"{fixed(q.delta, signed=True, missing='?')}: {_untrusted(q.query)}"
                 for q in regressed]
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

