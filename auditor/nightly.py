"""The nightly verdict on a stored run: compare with a comparable baseline, apply the gates,
write the reports, and alert when the verdict fails. The run itself is ``audit.run_audit``;
this step only reads what it stored, so a run can be (re-)judged later with ``auditor run
--resume`` or ``auditor gate``: every verdict is kept (``Store.verdicts``), the latest wins.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from auditor import gates as gating
from auditor.compare import Comparison, compare_runs, comparison_table
from auditor.config import AuditSettings
from auditor.gates import SampledInterval
from auditor.metrics.registry import headline
from auditor.store import Store
from auditor.store.read.run_facts import judged_coverage
from auditor.store.read.sample import paired_change, sampled_run
from auditor.verdict import StoredVerdict, Verdict

JUDGED_SHARE = 0.5  # warn when fewer of the replayed queries than this are judged


def judge(store: Store, run_id: str, settings: AuditSettings) -> Verdict:
    """Compare ``run_id`` with its comparable baseline and apply the gates; the verdict is
    appended to the run's verdict history."""
    run = store.run(run_id)
    if settings.baseline:
        baseline, reason = store.comparable_baseline(settings.baseline, run_id,
                                                     settings.baseline_min_shared)
    else:
        baseline, reason = None, "no baseline asked for (baseline = none)"
    means = {row["metric"]: row["mean"] for row in store.metric_means(run_id)}
    comparison = None
    if baseline is not None:
        wanted = headline(settings.diagnose_k) + [g.metric for g in settings.gates]
        measured = set(means) | {g.metric for g in settings.gates}
        metrics = [m for m in dict.fromkeys(wanted) if m in measured]
        comparison = compare_runs(store, baseline, run_id, metrics=metrics,
                                  k=settings.diagnose_k)
    sampled_means, sampled_changes = sampled_intervals(store, run, baseline, comparison,
                                                       settings)
    results = gating.evaluate(settings.gates, means, comparison, run["status"],
                              no_baseline=reason, status_reason=run.get("status_reason"),
                              sampled_means=sampled_means, sampled_changes=sampled_changes)
    warnings = judged_warnings(store, run_id, run.get("counts") or {})
    earlier = tuple(StoredVerdict.from_row(v) for v in store.verdicts(run_id))
    number = store.record_gates(run_id, baseline, gating.gates_table(run_id, results),
                                comparison_table(comparison) if comparison else None,
                                baseline_reason=reason, warnings=warnings)
    return Verdict(run_id, run["status"], baseline, comparison, tuple(results),
                   status_reason=run.get("status_reason"), baseline_reason=reason,
                   warnings=tuple(warnings), require_baseline=settings.require_baseline,
                   number=number, earlier=earlier)


def sampled_intervals(store: Store, run: dict[str, Any], baseline: str | None,
                      comparison: Comparison | None, settings: AuditSettings
                      ) -> tuple[dict[str, SampledInterval] | None,
                                 dict[str, SampledInterval] | None]:
    """The 95% CIs the gates use when this run or its baseline is sampled: of this run's
    means, and of the change on the shared queries (None where nothing is sampled)."""
    gated = [g.metric for g in settings.gates]
    own = sampled_run(store, run["run_id"], run.get("manifest"), gated)
    means = None if own is None else {
        m: SampledInterval(e.mean, e.low, e.high, own.describe())
        for m, e in own.estimates.items()}
    if comparison is None or baseline is None:
        return means, None
    change = paired_change(store, baseline, run["run_id"],
                           (store.run(baseline).get("manifest"), run.get("manifest")), gated)
    changes = None if change is None else {
        m: SampledInterval(e.mean, e.low, e.high, change.sampled)
        for m, e in change.estimates.items()}
    return means, changes


def judged_warnings(store: Store, run_id: str, counts: dict[str, Any]) -> list[str]:
    """Say when the judgments cover under half the queries, or match none of them."""
    coverage = judged_coverage(store, run_id)
    replayed, judged = coverage.replayed, coverage.judged
    named = counts.get("qrels_queries") or 0
    if not replayed:
        return []
    if named and not judged:
        return [f"qrels name {named} queries none of which is in the log: check that the "
                "qrels and the log use the same query ids"]
    if judged < JUDGED_SHARE * replayed:
        matched = f" (the qrels name {named} queries)" if named else ""
        return [f"only {judged} of {replayed} queries are judged{matched}: metrics from "
                "judgments describe a small part of the log"]
    return []


def publish(store: Store, verdict: Verdict, settings: AuditSettings) -> Verdict:
    """Write the reports and, when the verdict fails, post the alert (even if the reports
    could not be written: the alert is what wakes someone up)."""
    from auditor.report import write_reports

    try:
        if settings.reports is not None:
            directory = settings.reports.resolve() / verdict.run_id
            archive_reports(directory, verdict.number or 1)
            verdict = replace(verdict, reports=write_reports(
                store, verdict.run_id, directory, comparison=verdict.comparison))
    finally:
        if not verdict.passed and settings.webhook_url is not None:
            from auditor.alert_message import alert_payload
            from auditor.alerts import post_alert

            verdict = replace(verdict, alert=post_alert(settings.webhook_url.get_secret_value(),
                                                        alert_payload(verdict)))
    return verdict


def archive_reports(directory: Path, number: int) -> Path | None:
    """Move an earlier verdict's reports of the run into ``verdict-N/`` beside the new
    ones, so re-gating never overwrites them silently. Returns where they went."""
    from auditor.report import FILE_NAMES, move_html

    present = [directory / name for name in FILE_NAMES.values() if (directory / name).exists()]
    if not present:
        return None
    earlier = _report_verdict(directory) or max(number - 1, 1)
    target = directory / f"verdict-{earlier}"
    target.mkdir(parents=True, exist_ok=True)
    for path in present:
        if path.suffix == ".html":
            move_html(path, target / path.name)  # keeps its link to the shared plotly.js
        else:
            shutil.move(path, target / path.name)
    return target


def _report_verdict(directory: Path) -> int | None:
    try:
        data = json.loads((directory / "report.json").read_text(encoding="utf-8"))
        return int(data["verdict"]["number"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
