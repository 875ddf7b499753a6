"""How far raters agree on a judgment list: Cohen's κ per pair of raters (unweighted and
weighted by grade distance), Krippendorff's α over all of them, the pairs they disagree on
and each rater's grade distribution.

A *rater* is a label source (``human:alice``, ``imported:qrels.tsv``, ``cited``...); a rater
who judged a (query, document) pair more than once counts with the latest grade. Weights
are distances between grades (linear ``|a - b|``, quadratic ``(a - b)²``), not between the
positions of grades in a sorted list. A statistic that cannot be computed (fewer than two
raters, no pair judged by both, every grade the same so chance agreement is total) is
``None``: not evaluated, never a perfect score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from auditor.judging import Pair, Selection, effective, resolve
from auditor.store import Store

LEVELS = ("nominal", "ordinal", "interval")


@dataclass(frozen=True)
class Kappa:
    """Cohen's κ of two raters over the pairs both judged."""

    a: str
    b: str
    n: int
    kappa: float | None
    linear: float | None  # weighted by |a - b|
    quadratic: float | None  # weighted by (a - b)²


@dataclass(frozen=True)
class Agreement:
    judgments: str  # NAME@VERSION
    raters: tuple[str, ...]
    items: int  # pairs judged by at least two raters
    kappas: list[Kappa]
    alpha: dict[str, float | None]  # level of measurement -> Krippendorff's α
    distributions: dict[str, dict[int, int]]  # rater -> grade -> labels
    disagreements: list[Pair]  # pairs whose raters gave different grades, widest first


def cohen_kappa(first: list[int], second: list[int], weights: str | None = None
                ) -> float | None:
    """κ = 1 − Σ w·observed / Σ w·expected over the grades either rater used."""
    if not first:
        return None
    grades = sorted(set(first) | set(second))
    index = {g: i for i, g in enumerate(grades)}
    observed = np.zeros((len(grades), len(grades)))
    for x, y in zip(first, second, strict=True):
        observed[index[x], index[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    values = np.array(grades, dtype=float)
    distance = np.abs(values[:, None] - values[None, :])
    weight = {None: (distance > 0).astype(float), "linear": distance,
              "quadratic": distance ** 2}[weights]
    chance = float((weight * expected).sum())
    if chance <= 0:
        return None
    return 1.0 - float((weight * observed).sum()) / chance


def krippendorff_alpha(units: list[list[int]], level: str = "ordinal") -> float | None:
    """α = 1 − D_o / D_e from the coincidence matrix of the units judged at least twice."""
    pairable = [unit for unit in units if len(unit) >= 2]
    if not pairable:
        return None
    values = sorted({g for unit in pairable for g in unit})
    index = {g: i for i, g in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in pairable:
        counts = Counter(unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                together = n_c * (n_k - 1 if c == k else n_k)
                coincidence[index[c], index[k]] += together / (len(unit) - 1)
    totals = coincidence.sum(axis=1)
    n = totals.sum()
    delta = _distance(np.array(values, dtype=float), totals, level)
    disagreement_expected = float((np.outer(totals, totals) * delta).sum()) / (n - 1)
    if disagreement_expected <= 0:
        return None
    return 1.0 - float((coincidence * delta).sum()) / disagreement_expected


def _distance(values: np.ndarray, totals: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's squared difference δ² between every two values."""
    if level == "nominal":
        return (values[:, None] != values[None, :]).astype(float)
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    cumulative = np.cumsum(totals)  # ordinal: the values' mass between c and k
    low = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
    high = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
    between = cumulative[high] - cumulative[low] + totals[low]
    return (between - (totals[:, None] + totals[None, :]) / 2) ** 2


def agreement(store: Store, spec: str, selection: Selection | None = None) -> Agreement:
    """The agreement report of list version ``spec`` over the raters ``selection`` keeps."""
    version = resolve(store, spec)
    pairs = effective(store.list_labels(version.name, version.version),
                      selection or Selection())
    raters = tuple(sorted({rater for pair in pairs for rater in pair.grades}))
    kappas = []
    for a, b in combinations(raters, 2):
        both = [p.grades for p in pairs if a in p.grades and b in p.grades]
        first, second = [g[a] for g in both], [g[b] for g in both]
        kappas.append(Kappa(a, b, len(both), *(cohen_kappa(first, second, w)
                                               for w in (None, "linear", "quadratic"))))
    units = [list(p.grades.values()) for p in pairs]
    distributions = {rater: dict(sorted(Counter(p.grades[rater] for p in pairs
                                                if rater in p.grades).items()))
                     for rater in raters}
    split = [p for p in pairs if len(set(p.grades.values())) > 1]
    split.sort(key=lambda p: (-(max(p.grades.values()) - min(p.grades.values())), p.position))
    return Agreement(version.spec, raters, sum(len(u) >= 2 for u in units), kappas,
                     {level: krippendorff_alpha(units, level) for level in LEVELS},
                     distributions, split)
