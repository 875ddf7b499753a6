"""The verdict on a run as one typed read model, which the CLI, the alert, the reports and
the dashboard all render: the run's status, each gate's result, the baseline it was compared
with (or why there is none), the warnings, the comparison and the verdict history.

``nightly.judge`` makes one when it gates a run; :func:`read_verdict` reads the latest from
the store (a run never gated is not ``judged``). The JSON forms below are the ones
``auditor run --json``, ``auditor gate --json`` and ``auditor report --format json`` print;
they keep their keys and order so the outputs stay what they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from auditor.gates import GateResult
from auditor.records import NOT_EVALUATED, GateStatus, overall

if TYPE_CHECKING:
    from auditor.alerts import AlertResult
    from auditor.compare import Comparison
    from auditor.store import Store

# The columns of a stored gate row, in the store's order (``Store.gates``, the verdicts' JSON).
GATE_ROW = ("gate", "metric", "kind", "status", "passed", "value", "threshold",
            "baseline_run_id", "reason")


def gate_row(gate: GateResult) -> dict[str, Any]:
    """A gate result as the store keeps it (and the report's JSON lists it)."""
    return {name: getattr(gate, name) for name in GATE_ROW}


def gate_from_row(row: Mapping[str, Any]) -> GateResult:
    """A stored gate row (``status`` derived from ``passed`` in rows older than it). A
    missing value may come as NaN (a table read into pandas): it is None here."""
    status = row.get("status") or ("passed" if row.get("passed") else "failed")
    value, baseline = row.get("value"), row.get("baseline_run_id")
    return GateResult(row["gate"], row["metric"], row["kind"], cast(GateStatus, status),
                      None if value is None or math.isnan(value) else float(value),
                      float(row["threshold"]), baseline if isinstance(baseline, str) else None,
                      str(row.get("reason") or ""))


@dataclass(frozen=True)
class StoredVerdict:
    """One verdict of a run's history, as the store keeps it (re-gating adds one)."""

    verdict_id: int
    created_at: datetime
    gate_status: GateStatus
    baseline_run_id: str | None
    baseline_reason: str | None
    warnings: tuple[str, ...]
    gates: tuple[GateResult, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredVerdict:
        return cls(row["verdict_id"], row["created_at"], row["gate_status"],
                   row.get("baseline_run_id"), row.get("baseline_reason"),
                   tuple(row.get("warnings") or ()),
                   tuple(gate_from_row(g) for g in row.get("gates") or ()))

    def to_dict(self) -> dict[str, Any]:
        """The stored row (``auditor gate --json`` lists the earlier verdicts so)."""
        return {"verdict_id": self.verdict_id, "created_at": self.created_at,
                "gate_status": self.gate_status, "baseline_run_id": self.baseline_run_id,
                "baseline_reason": self.baseline_reason, "warnings": list(self.warnings),
                "gates": [gate_row(g) for g in self.gates]}


@dataclass(frozen=True)
class Verdict:
    """The verdict on one run; ``judged`` is False for a run never gated (no verdict)."""

    run_id: str
    status: str  # the run's: complete | partial | failed
    baseline_run_id: str | None
    comparison: Comparison | None
    gates: tuple[GateResult, ...]
    judged: bool = True
    status_reason: str | None = None
    baseline_reason: str | None = None  # why there is no comparable baseline
    warnings: tuple[str, ...] = ()
    require_baseline: bool = False  # not evaluated counts as failed
    number: int | None = None  # this verdict's number on the run (re-gating adds one)
    created_at: datetime | None = None
    earlier: tuple[StoredVerdict, ...] = ()  # older verdicts, newest first
    reports: Mapping[str, Path] = field(default_factory=dict)
    alert: AlertResult | None = None

    @property
    def gate_status(self) -> GateStatus | None:
        """Failed if a gate failed, else not evaluated if one was not, else passed; None
        when the run was never gated."""
        return overall([g.status for g in self.gates]) if self.judged else None

    @property
    def not_evaluated(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == NOT_EVALUATED]

    @property
    def failed(self) -> list[GateResult]:
        """The gates that make the verdict fail (not evaluated ones too with
        ``require_baseline``)."""
        return [g for g in self.gates if g.status == "failed"
                or (self.require_baseline and g.status == NOT_EVALUATED)]

    @property
    def passed(self) -> bool:
        """Whether the nightly job stays green (exit 0): no gate failed, and nothing went
        unevaluated when ``require_baseline`` is set."""
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    # JSON forms --------------------------------------------------------------------------
    def run_json(self) -> dict[str, Any]:
        """The ``verdict`` of ``auditor run --json`` (and the body of ``gate --json``)."""
        comparison = self.comparison
        return {
            "passed": self.passed,
            "gate_status": self.gate_status,
            "baseline_run_id": self.baseline_run_id,
            "baseline_reason": self.baseline_reason,
            "warnings": list(self.warnings),
            "gates": [g.as_dict() for g in self.gates],
            "regressed": [q.query_id for q in comparison.regressed] if comparison else [],
            "regressed_total": comparison.regressed_total if comparison else 0,
            "improved_total": comparison.improved_total if comparison else 0,
            "new_causes": sorted(c["cause"] for c in comparison.new_cause_counts)
            if comparison else [],
            "reports": {kind: str(path) for kind, path in self.reports.items()},
            "alert": None if self.alert is None else {
                "delivered": self.alert.delivered, "attempts": self.alert.attempts},
        }

    def gate_json(self) -> dict[str, Any]:
        """What ``auditor gate --json`` prints: the run form, its number and history."""
        return {**self.run_json(), "verdict_number": self.number,
                "earlier_verdicts": [v.to_dict() for v in self.earlier]}

    def history_json(self) -> dict[str, Any]:
        """The ``verdict`` of a report: number, baseline reason, warnings, earlier ones."""
        return {
            "number": self.number,
            "created_at": self.created_at,
            "baseline_reason": self.baseline_reason,
            "warnings": list(self.warnings),
            "earlier": [{"verdict_id": v.verdict_id, "created_at": v.created_at,
                         "gate_status": v.gate_status, "baseline_run_id": v.baseline_run_id}
                        for v in self.earlier],
        }


def read_verdict(store: Store, run_id: str, *, run: Mapping[str, Any] | None = None,
                 comparison: Comparison | None = None) -> Verdict:
    """The latest verdict stored for ``run_id`` (its gates, baseline and history); a run
    never gated has none of them. ``comparison`` is attached as given (the store keeps
    only its metric rows)."""
    row = run if run is not None else store.run(run_id)
    history = [StoredVerdict.from_row(v) for v in store.verdicts(run_id)]
    latest = history[0] if history else None
    return Verdict(
        run_id=run_id, status=row["status"], baseline_run_id=row.get("baseline_run_id"),
        comparison=comparison, gates=tuple(gate_from_row(g) for g in store.gates(run_id)),
        judged=row.get("gate_status") is not None, status_reason=row.get("status_reason"),
        baseline_reason=latest.baseline_reason if latest else None,
        warnings=latest.warnings if latest else (),
        number=latest.verdict_id if latest else None,
        created_at=latest.created_at if latest else None, earlier=tuple(history[1:]))

