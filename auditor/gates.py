"""Gates: the thresholds a nightly run must meet, each failure with a sentence a person reads.

Two kinds. A floor or ceiling on a metric's mean (``recall@10 >= 0.80``), and a limit on the
drop against the baseline that only fails when the drop is also significant (Holm-adjusted
paired randomization p below ``alpha``): a nightly gate that fires on noise gets switched off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from auditor.compare import Comparison

GateKind = Literal["min", "max", "max_drop"]
# Metrics where a smaller value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"scatter_docs", "scatter_chunks", "effective_sources"})


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


class Gate(BaseModel):
    """One gate from ``audit.toml`` (``[[gates]]``): exactly one of min, max, max_drop."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    alpha: float = 0.05

    @model_validator(mode="after")
    def _one_limit(self) -> Gate:
        given = [k for k in ("min", "max", "max_drop") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"gate on {self.metric} needs exactly one of min, max, max_drop (got "
                f"{', '.join(given) or 'none'})"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"gate on {self.metric}: alpha must be between 0 and 1")
        return self

    @property
    def kind(self) -> GateKind:
        return "min" if self.min is not None else "max" if self.max is not None else "max_drop"

    @property
    def threshold(self) -> float:
        value = {"min": self.min, "max": self.max, "max_drop": self.max_drop}[self.kind]
        assert value is not None
        return value

    @property
    def name(self) -> str:
        if self.kind == "min":
            return f"{self.metric} >= {self.threshold:.3f}"
        if self.kind == "max":
            return f"{self.metric} <= {self.threshold:.3f}"
        return f"{self.metric} drop <= {self.threshold:.3f} (significant at {self.alpha:g})"


DEFAULT_GATES = [Gate(metric="recall@10", max_drop=0.02), Gate(metric="ndcg@10", max_drop=0.02)]


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    kind: GateKind
    passed: bool
    value: float | None
    threshold: float
    baseline_run_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    gates: list[Gate],
    means: dict[str, float | None],
    comparison: Comparison | None,
    status: str = "complete",
) -> list[GateResult]:
    """Every gate's verdict. A run that is not complete fails a gate of its own."""
    results = []
    if status != "complete":
        results.append(GateResult(
            "run is complete", "status", "min", False, None, 1.0, None,
            f"the run is {status}: its numbers do not cover the whole log",
        ))
    for gate in gates:
        if gate.kind == "max_drop":
            results.append(_relative(gate, comparison))
        else:
            results.append(_absolute(gate, means.get(gate.metric)))
    return results


def _absolute(gate: Gate, value: float | None) -> GateResult:
    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(gate.name, gate.metric, gate.kind, passed, value, gate.threshold,
                          None, reason)

    if value is None:
        return result(False, f"{gate.metric} was not measured in this run (no judged query?)")
    if gate.kind == "min":
        ok = value >= gate.threshold
        return result(ok, f"{gate.metric} {value:.3f} {'>=' if ok else '<'} {gate.threshold:.3f}")
    ok = value <= gate.threshold
    return result(ok, f"{gate.metric} {value:.3f} {'<=' if ok else '>'} {gate.threshold:.3f}")


def _relative(gate: Gate, comparison: Comparison | None) -> GateResult:
    baseline_id = comparison.baseline_run_id if comparison else None

    def result(passed: bool, value: float | None, reason: str) -> GateResult:
        return GateResult(gate.name, gate.metric, gate.kind, passed, value, gate.threshold,
                          baseline_id, reason)

    if comparison is None:
        return result(True, None, f"{gate.metric}: no baseline run to compare with yet")
    if comparison.shared_queries == 0:
        return result(True, None, f"{gate.metric}: no query in common with baseline "
                                  f"{baseline_id}, nothing to compare")
    delta = comparison.metric(gate.metric)
    if delta is None or delta.delta is None:
        return result(False, None, f"{gate.metric} is not measured in both runs")
    drop = (delta.delta if lower_is_better(gate.metric) else -delta.delta) + 0.0  # no -0.000
    p = delta.p_holm if delta.p_holm is not None else 1.0
    interval = ("" if delta.ci_low is None or delta.ci_high is None
                else f", 95% CI of the change [{delta.ci_low:+.3f}, {delta.ci_high:+.3f}]")
    where = (f"{gate.metric} {delta.baseline_mean:.3f} → {delta.current_mean:.3f} "
             f"(drop {drop:+.3f}{interval}, Holm p {p:.3g}, n {delta.n})")
    if drop > gate.threshold and p < gate.alpha:
        return result(False, drop, f"{where}: drop above {gate.threshold:.3f} and significant")
    if drop > gate.threshold:
        return result(True, drop, f"{where}: drop above {gate.threshold:.3f} but not significant"
                                  f" at {gate.alpha:g}")
    return result(True, drop, where)


def gates_table(run_id: str, results: list[GateResult]) -> pa.Table:
    rows = [{"run_id": run_id, **r.as_dict()} for r in results]
    schema = pa.schema([
        ("run_id", pa.string()), ("gate", pa.string()), ("metric", pa.string()),
        ("kind", pa.string()), ("passed", pa.bool_()), ("value", pa.float64()),
        ("threshold", pa.float64()), ("baseline_run_id", pa.string()), ("reason", pa.string()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)
