"""The nightly verdict on a stored run: compare with the baseline, apply the gates, write the
reports, and alert when a gate failed. The run itself is ``audit.run_audit``; this step only
reads what it stored, so a run can be (re-)judged later with ``auditor run --resume`` or
``auditor gate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor import gates as gating
from auditor.compare import Comparison, compare_runs, comparison_table, headline
from auditor.config import AuditSettings
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.alerts import AlertResult


@dataclass
class Verdict:
    run_id: str
    status: str
    baseline_run_id: str | None
    comparison: Comparison | None
    gates: list[gating.GateResult]
    reports: dict[str, Path] = field(default_factory=dict)
    alert: AlertResult | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[gating.GateResult]:
        return [g for g in self.gates if not g.passed]


def judge(store: Store, run_id: str, settings: AuditSettings) -> Verdict:
    """Compare ``run_id`` with its baseline (``settings.baseline``) and apply the gates."""
    run = store.run(run_id)
    baseline = store.resolve_baseline(settings.baseline, run_id) if settings.baseline else None
    means = {row["metric"]: row["mean"] for row in store.metric_means(run_id)}
    comparison = None
    if baseline is not None:
        wanted = headline(settings.diagnose_k) + [g.metric for g in settings.gates]
        measured = set(means) | {g.metric for g in settings.gates}
        metrics = [m for m in dict.fromkeys(wanted) if m in measured]
        comparison = compare_runs(store, baseline, run_id, metrics=metrics,
                                  k=settings.diagnose_k)
    results = gating.evaluate(settings.gates, means, comparison, run["status"])
    store.record_gates(run_id, baseline, gating.gates_table(run_id, results),
                       comparison_table(comparison) if comparison else None)
    return Verdict(run_id, run["status"], baseline, comparison, results)


def publish(store: Store, verdict: Verdict, settings: AuditSettings) -> Verdict:
    """Write the reports and, when a gate failed, post the alert (even if the reports
    could not be written: the alert is what wakes someone up)."""
    from auditor.report import write_reports

    try:
        if settings.reports is not None:
            directory = settings.reports.resolve() / verdict.run_id
            verdict.reports = write_reports(store, verdict.run_id, directory,
                                            comparison=verdict.comparison)
    finally:
        if not verdict.passed and settings.webhook_url is not None:
            from auditor.alerts import alert_payload, post_alert

            verdict.alert = post_alert(settings.webhook_url.get_secret_value(),
                                       alert_payload(alert_summary(verdict)))
    return verdict


def alert_summary(verdict: Verdict) -> dict[str, Any]:
    comparison = verdict.comparison.to_dict() if verdict.comparison else None
    return {
        "run_id": verdict.run_id,
        "status": verdict.status,
        "baseline_run_id": verdict.baseline_run_id,
        "gates": [g.as_dict() for g in verdict.gates],
        "comparison": comparison,
        "reports": {kind: str(path) for kind, path in verdict.reports.items()},
    }
