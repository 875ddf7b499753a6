"""The words and numbers every report format writes the same way: the verdict's state, the
gates' tally and order, the notes a reader must not miss, and the number formats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auditor.gates import GateResult
from auditor.numerals import estimate, fixed, interval
from auditor.sampled import sample_sentence

if TYPE_CHECKING:
    from auditor.report.gather import Report

GATE_MARKS = {"passed": "✅", "failed": "❌", "not_evaluated": "⏭️"}
GATE_WORDS = {"passed": "pass", "failed": "fail", "not_evaluated": "not evaluated"}


def status_ok(report: Report) -> bool:
    """Green when the gates passed, or, on an ungated run, when the run completed."""
    if report.verdict.gate_status is not None:
        return report.verdict.gate_status == "passed"
    return report.summary["status"] == "complete"


def state(report: Report) -> str:
    """passed | failed | not_evaluated | not gated: what the banner and icons say."""
    if report.verdict.gate_status is not None:
        return report.verdict.gate_status
    return "not gated" if report.summary["status"] == "complete" else "failed"


def num(value: float | None, signed: bool = False) -> str:
    """A mean or delta as every output writes it (see :mod:`auditor.numerals`)."""
    return fixed(value, signed)


def ci(row: dict[str, Any]) -> str:
    return interval(row.get("ci_low"), row.get("ci_high"))


def mean_cell(row: dict[str, Any]) -> str:
    """A headline mean; a sampled run's with its 95% CI (the stratified estimate's)."""
    if "sample_ci_low" not in row:
        return num(row["mean"])
    return estimate(row["mean"], row["sample_ci_low"], row["sample_ci_high"])


def failed_first(gates: Sequence[GateResult]) -> list[GateResult]:
    order = {"failed": 0, "not_evaluated": 1, "passed": 2}
    return sorted(gates, key=lambda g: (order.get(g.status, 1), g.gate))


def gate_tally(gates: Sequence[GateResult]) -> dict[str, int]:
    tally = {"passed": 0, "failed": 0, "not_evaluated": 0}
    for gate in gates:
        tally[gate.status] = tally.get(gate.status, 0) + 1
    return tally


def notes(report: Report) -> list[str]:
    """Sentences a reader must not miss: why nothing was compared, weak judgments, drift,
    and that this verdict replaced earlier ones."""
    verdict = report.verdict
    sample = report.summary.get("sample")
    lines = [sample_sentence(sample)] if sample else []
    reason = verdict.baseline_reason
    if reason and not verdict.baseline_run_id:
        relative = any(g.kind == "max_drop" for g in verdict.gates)
        lines.append(reason[0].upper() + reason[1:]
                     + (", so the regression gates are not evaluated." if relative else "."))
    lines += verdict.warnings
    drift = report.summary.get("drift") or {}
    if drift.get("sentence"):
        lines.append(drift["sentence"][0].upper() + drift["sentence"][1:] + ".")
    if verdict.earlier:
        previous = verdict.earlier[0]
        lines.append(
            f"This is verdict {verdict.number} on this run, which was judged before: "
            f"verdict {previous.verdict_id} said {previous.gate_status} "
            f"({previous.created_at.isoformat()[:19]}). Earlier verdicts are kept in the store "
            f"(`auditor gate` history) and their reports in verdict-N/ folders.")
    return lines


def truncate(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"
