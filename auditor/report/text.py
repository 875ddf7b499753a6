"""The words and numbers every report format writes the same way: the verdict's state, the
gates' tally and order, the notes a reader must not miss, and the number formats."""

from __future__ import annotations

from typing import Any

GATE_MARKS = {"passed": "✅", "failed": "❌", "not_evaluated": "⏭️"}
GATE_WORDS = {"passed": "pass", "failed": "fail", "not_evaluated": "not evaluated"}


def status_ok(data: dict[str, Any]) -> bool:
    """Green when the gates passed, or, on an ungated run, when the run completed."""
    if data["gate_status"] is not None:
        return data["gate_status"] == "passed"
    return data["summary"]["status"] == "complete"


def state(data: dict[str, Any]) -> str:
    """passed | failed | not_evaluated | not gated: what the banner and icons say."""
    if data["gate_status"] is not None:
        return data["gate_status"]
    return "not gated" if data["summary"]["status"] == "complete" else "failed"


def gate_status(gate: dict[str, Any]) -> str:
    """A gate row's status (rows from before the status column carry ``passed`` only)."""
    return gate.get("status") or ("passed" if gate["passed"] else "failed")


def num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def p_value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def ci(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return "—"
    return f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def failed_first(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"failed": 0, "not_evaluated": 1, "passed": 2}
    return sorted(gates, key=lambda g: (order.get(gate_status(g), 1), g["gate"]))


def gate_tally(gates: list[dict[str, Any]]) -> dict[str, int]:
    tally = {"passed": 0, "failed": 0, "not_evaluated": 0}
    for gate in gates:
        tally[gate_status(gate)] = tally.get(gate_status(gate), 0) + 1
    return tally


def notes(data: dict[str, Any]) -> list[str]:
    """Sentences a reader must not miss: why nothing was compared, weak judgments, drift,
    and that this verdict replaced earlier ones."""
    verdict = data.get("verdict") or {}
    lines = []
    reason = verdict.get("baseline_reason")
    if reason and not data["baseline_run_id"]:
        relative = any(g["kind"] == "max_drop" for g in data["gates"])
        lines.append(reason[0].upper() + reason[1:]
                     + (", so the regression gates are not evaluated." if relative else "."))
    lines += verdict.get("warnings") or []
    drift = data["summary"].get("drift") or {}
    if drift.get("sentence"):
        lines.append(drift["sentence"][0].upper() + drift["sentence"][1:] + ".")
    earlier = verdict.get("earlier") or []
    if earlier:
        previous = earlier[0]
        lines.append(
            f"This is verdict {verdict.get('number')} on this run, which was judged before: "
            f"verdict {previous['verdict_id']} said {previous['gate_status']} "
            f"({str(previous['created_at'])[:19]}). Earlier verdicts are kept in the store "
            f"(`auditor gate` history) and their reports in verdict-N/ folders.")
    return lines


def truncate(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"

