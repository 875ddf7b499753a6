"""Gates: the thresholds a nightly run must meet, each failure with a sentence a person reads.

Two kinds. A floor or ceiling on a metric's mean (``recall@10 >= 0.80``), and a limit on the
drop against the baseline that only fails when the drop is also significant (Holm-adjusted
paired randomization p below ``alpha``): a nightly gate that fires on noise gets switched off.

A gate that could not be checked is ``not_evaluated``, never ``passed``: no comparable
baseline, no judged query for its metric, or too few paired queries for the test to ever
reach ``alpha``. A nightly job that checked nothing must not read green.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditor.config import Gate, GateKind
from auditor.metrics.registry import lower_is_better
from auditor.records import NOT_EVALUATED, GateStatus, overall

if TYPE_CHECKING:
    from auditor.compare import Comparison

# The status vocabulary lives in records (the store needs it too); read here by nightly.
__all__ = ["NOT_EVALUATED", "GateResult", "GateStatus", "evaluate", "gates_table", "overall"]


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    kind: GateKind
    status: GateStatus
    value: float | None
    threshold: float
    baseline_run_id: str | None
    reason: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class SampledInterval:
    """A sampled run's estimate with its 95% CI: of a metric's mean (floor and ceiling
    gates) or of its change against the baseline (``max_drop`` gates)."""

    mean: float
    low: float
    high: float
    sampled: str  # "sampled: n of N"

    @property
    def decidable(self) -> bool:
        return not any(math.isnan(v) for v in (self.mean, self.low, self.high))


def evaluate(
    gates: list[Gate],
    means: dict[str, float | None],
    comparison: Comparison | None,
    status: str = "complete",
    *,
    no_baseline: str | None = None,
    status_reason: str | None = None,
    sampled_means: dict[str, SampledInterval] | None = None,
    sampled_changes: dict[str, SampledInterval] | None = None,
) -> list[GateResult]:
    """Every gate's verdict. A run that is not complete fails a gate of its own.

    ``no_baseline`` says why there is no comparison (relative gates are then not evaluated).
    When a run is sampled, ``sampled_means`` (this run's) and ``sampled_changes`` (against
    the baseline) hold the 95% CIs that decide: a gate fails only when the whole interval
    is beyond its limit, passes only when the whole interval is within it, and is not
    evaluated when the interval straddles the limit (the sample is too small to decide).
    """
    results = []
    if status != "complete":
        why = f" ({status_reason})" if status_reason else ""
        results.append(GateResult(
            "run is complete", "status", "min", "failed", None, 1.0, None,
            f"the run is {status}{why}: its numbers do not cover the whole log",
        ))
    for gate in gates:
        if gate.kind == "max_drop":
            change = (sampled_changes or {}).get(gate.metric)
            results.append(_relative(gate, comparison, no_baseline, change))
        elif (sampled_means or {}).get(gate.metric) is not None:
            results.append(_sampled(gate, (sampled_means or {})[gate.metric], gate.metric,
                                    None))
        else:
            results.append(_absolute(gate, means.get(gate.metric)))
    return results


def _sampled(gate: Gate, interval: SampledInterval, what: str, baseline_id: str | None
             ) -> GateResult:
    """A gate decided by a 95% CI: ``interval`` is the mean (floor, ceiling) or the drop
    (``max_drop``, already signed so that a positive drop is worse)."""
    threshold = gate.threshold

    def result(status: GateStatus, reason: str) -> GateResult:
        value = interval.mean if interval.decidable else None
        return GateResult(gate.name, gate.metric, gate.kind, status, value, threshold,
                          baseline_id, reason)

    if not interval.decidable:
        return result(NOT_EVALUATED, f"{what}: too few sampled queries for an interval "
                                     f"({interval.sampled})")
    where = (f"{what} {interval.mean:+.3f}" if gate.kind == "max_drop" else
             f"{what} {interval.mean:.3f}") + (
        f", 95% CI [{interval.low:.3f}, {interval.high:.3f}] ({interval.sampled})")
    beyond = interval.high < threshold if gate.kind == "min" else interval.low > threshold
    within = interval.low >= threshold if gate.kind == "min" else interval.high <= threshold
    if beyond:
        return result("failed", f"{where}: the whole interval is beyond {threshold:.3f}")
    if within:
        return result("passed", f"{where}: the whole interval is within {threshold:.3f}")
    return result(NOT_EVALUATED, f"{where} holds {threshold:.3f}: the sample is too small "
                                 "to decide")


def _absolute(gate: Gate, value: float | None) -> GateResult:
    def result(status: GateStatus, reason: str) -> GateResult:
        return GateResult(gate.name, gate.metric, gate.kind, status, value, gate.threshold,
                          None, reason)

    if value is None:
        return result(NOT_EVALUATED, f"{gate.metric} is not measured in this run: no query "
                                     "has a value (none judged, or qrels ids match no query)")
    if gate.kind == "min":
        ok = value >= gate.threshold
        return result("passed" if ok else "failed",
                      f"{gate.metric} {value:.3f} {'>=' if ok else '<'} {gate.threshold:.3f}")
    ok = value <= gate.threshold
    return result("passed" if ok else "failed",
                  f"{gate.metric} {value:.3f} {'<=' if ok else '>'} {gate.threshold:.3f}")


def smallest_p(n: int) -> float:
    """The smallest two-sided p a paired sign-flip test on ``n`` queries can give."""
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))


def _relative(gate: Gate, comparison: Comparison | None, no_baseline: str | None,
              change: SampledInterval | None = None) -> GateResult:
    baseline_id = comparison.baseline_run_id if comparison else None

    def result(status: GateStatus, value: float | None, reason: str) -> GateResult:
        return GateResult(gate.name, gate.metric, gate.kind, status, value, gate.threshold,
                          baseline_id, reason)

    if comparison is None:
        why = no_baseline or "no baseline run to compare with"
        return result(NOT_EVALUATED, None, f"{gate.metric} not evaluated ({why})")
    if comparison.shared_queries == 0:
        return result(NOT_EVALUATED, None, f"{gate.metric}: no query in common with baseline "
                                           f"{baseline_id}, nothing to compare")
    delta = comparison.metric(gate.metric)
    if delta is None or delta.delta is None or delta.n == 0:
        return result(NOT_EVALUATED, None, f"{gate.metric} is not measured on any query both "
                                           "runs answered")
    if change is not None and smallest_p(delta.n) >= gate.alpha:
        return result(NOT_EVALUATED, None, f"{gate.metric}: {delta.n} shared queries "
                                           f"({change.sampled}) are too few to decide")
    if change is not None:  # a sampled run: the interval of the change decides
        sign = 1.0 if lower_is_better(gate.metric) else -1.0
        low, high = sorted((sign * change.low, sign * change.high))
        drop = SampledInterval(sign * change.mean + 0.0, low, high, change.sampled)
        return _sampled(gate, drop, f"{gate.metric} drop on {delta.n} shared queries",
                        baseline_id)
    drop = (delta.delta if lower_is_better(gate.metric) else -delta.delta) + 0.0  # no -0.000
    p = delta.p_holm if delta.p_holm is not None else 1.0
    interval = ("" if delta.ci_low is None or delta.ci_high is None
                else f", 95% CI of the change [{delta.ci_low:+.3f}, {delta.ci_high:+.3f}]")
    where = (f"{gate.metric} {delta.baseline_mean:.3f} → {delta.current_mean:.3f} "
             f"(drop {drop:+.3f}{interval}, Holm p {p:.3g}, n {delta.n})")
    if smallest_p(delta.n) >= gate.alpha:
        return result(NOT_EVALUATED, drop, f"{where}: {delta.n} paired queries are too few "
                                           f"for a test at {gate.alpha:g}")
    if drop > gate.threshold and p < gate.alpha:
        return result("failed", drop, f"{where}: drop above {gate.threshold:.3f} and "
                                      "significant")
    if drop > gate.threshold:
        return result("passed", drop, f"{where}: drop above {gate.threshold:.3f} but not "
                                      f"significant at {gate.alpha:g}")
    return result("passed", drop, where)


def gates_table(run_id: str, results: list[GateResult]) -> pa.Table:
    rows = [{"run_id": run_id, **r.as_dict()} for r in results]
    schema = pa.schema([
        ("run_id", pa.string()), ("gate", pa.string()), ("metric", pa.string()),
        ("kind", pa.string()), ("status", pa.string()), ("passed", pa.bool_()),
        ("value", pa.float64()),
        ("threshold", pa.float64()), ("baseline_run_id", pa.string()), ("reason", pa.string()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)
