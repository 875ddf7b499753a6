"""Drift and scatter on cases checked by hand, RBO against a naive reading of its formula."""

from __future__ import annotations

import math
import random

import pytest

from auditor.metrics import scatter
from auditor.metrics.drift import overlap_at_k, rbo
from auditor.metrics.scatter import Cover, effective_sources, min_cover


def naive_rbo_ext(s: list[str], t: list[str], p: float) -> float:
    """Webber et al. (2010) eq. 32, computed from prefix intersections directly."""
    if len(s) > len(t):
        s, t = t, s
    small, large = len(s), len(t)

    def x(d: int) -> int:
        return len(set(s[:d]) & set(t[:d]))

    total = sum(x(d) / d * p**d for d in range(1, large + 1))
    total += sum(x(small) * (d - small) / (small * d) * p**d for d in range(small + 1, large + 1))
    return (1 - p) / p * total + ((x(large) - x(small)) / large + x(small) / small) * p**large


def test_rbo_matches_the_formula_on_random_lists() -> None:
    rng = random.Random(7)
    pool = [f"d{i}" for i in range(25)]
    worst = 0.0
    for _ in range(500):
        a = rng.sample(pool, rng.randint(1, 15))
        b = rng.sample(pool, rng.randint(1, 15))
        worst = max(worst, abs(rbo(a, b) - naive_rbo_ext(a, b, 0.9)))
    assert worst < 1e-12


def test_rbo_edges() -> None:
    assert rbo(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    assert rbo(["a", "b"], ["c", "d"]) == 0.0
    assert rbo([], []) is None and rbo(["a"], []) == 0.0
    top_swap, bottom_swap = rbo(list("bacde"), list("abcde")), rbo(list("abced"), list("abcde"))
    assert top_swap < bottom_swap < 1.0  # disagreement at the top weighs more


def test_overlap_at_k() -> None:
    assert overlap_at_k(["a", "b", "c"], ["c", "b", "x"], 3) == pytest.approx(2 / 3)
    assert overlap_at_k(["a", "b"], ["a", "b", "c", "d"], 2) == 1.0
    assert overlap_at_k(["a"], ["a", "b"], 10) == 0.5  # replay returned something new
    assert overlap_at_k([], [], 5) is None


def test_min_cover_exact_small_cases() -> None:
    # Two documents each hold half of a two-hop answer: scatter 2.
    assert min_cover({"A": {0}, "B": {1}, "C": set()}) == Cover(2, ("A", "B"), False)
    # One document supports everything: scatter 1, chosen over partial ones.
    assert min_cover({"A": {0}, "B": {0, 1, 2}, "C": {2}}).size == 1
    # Greedy would take X first (3 sentences) and need 3; the optimum is 2.
    support = {"X": {0, 1, 2}, "Y": {0, 3, 4}, "Z": {1, 2, 5}, "W": {3, 4, 5}}
    assert min_cover(support) == Cover(2, ("W", "X"), False)
    assert min_cover({}) == Cover(None, (), False)
    assert min_cover({"A": set()}).size is None


def test_min_cover_ties_break_by_id() -> None:
    assert min_cover({"b": {0}, "a": {0}}).sources == ("a",)


def test_large_instances_fall_back_to_greedy(monkeypatch) -> None:
    monkeypatch.setattr(scatter, "EXACT_LIMIT", 5)
    support = {f"d{i:02d}": {i} for i in range(8)}
    cover = min_cover(support)
    assert cover.approx and cover.size == 8
    assert set(cover.sources) == set(support)


def test_effective_sources() -> None:
    assert effective_sources({0: "A", 1: "A"}) == pytest.approx(1.0)
    assert effective_sources({0: "A", 1: "B"}) == pytest.approx(2.0)
    assert effective_sources({0: "A", 1: "A", 2: "B"}) == pytest.approx(
        math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    )
    assert effective_sources({}) is None


def test_gini_and_probe_text() -> None:
    import numpy as np

    from auditor.metrics.corpus import gini, probe_text

    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)  # (n-1)/n at full concentration
    assert gini(np.array([])) is None and gini(np.array([0, 0])) is None
    assert probe_text(" Title ", "Body. More.") == "Title"
    assert probe_text("", "First sentence here. Second one.") == "First sentence here."
