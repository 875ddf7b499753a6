"""Numbers as the terminal, the reports and the alerts write them: one spelling each, so a
mean reads ``0.412`` and a missing one ``—`` in every place a person sees it.

Plain strings only (no Rich, no HTML): the CLI, the report renderers and the alert payload
all import from here, and none of them may depend on another's output layer.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

MISSING = "—"  # a value that was not measured (never 0, which reads like a measurement)


def fixed(value: Any, signed: bool = False, missing: str = MISSING) -> str:
    """A mean, a score or a delta to three decimals (``+`` shown when ``signed``);
    anything that is not a number is ``missing``."""
    if not isinstance(value, Real):
        return missing
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def p_value(value: float | None) -> str:
    """A p-value: three decimals, scientific below 0.001 so a tiny p does not read as 0."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def interval(low: float | None, high: float | None) -> str:
    """A confidence interval of a delta, both ends signed."""
    if low is None or high is None:
        return MISSING
    return f"[{low:+.3f}, {high:+.3f}]"


def estimate(mean: float | None, low: float | None, high: float | None) -> str:
    """A sampled run's mean with its 95% CI: ``0.978 (95% CI 0.954–1.000)``."""
    if low is None or high is None:
        return fixed(mean)
    return f"{fixed(mean)} (95% CI {low:.3f}–{high:.3f})"
