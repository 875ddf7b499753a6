"""Scatter: over how many sources an answer's support is spread.

``scatter`` = the least number of sources (documents, or chunks) whose union supports every
supportable answer sentence: a minimum set cover. Exact for small instances (iterative
deepening over combinations of non-dominated sources, bounded by ``EXACT_LIMIT``
combinations), greedy beyond that with ``approx = True`` (greedy is within a factor
ln(sentences) + 1 of the optimum). Hand-written because the instances are tiny and no
well-kept library does exact small set cover without pulling in an ILP solver.

``effective sources`` = exp(entropy) of the shares of sentences whose best support is each
document: 1 when one document supports everything, n when n documents share equally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

EXACT_LIMIT = 200_000  # combinations tried before falling back to greedy


@dataclass(frozen=True)
class Cover:
    size: int | None  # None when no sentence is supportable
    sources: tuple[str, ...]
    approx: bool


def min_cover(support: Mapping[str, set[int]]) -> Cover:
    """Fewest sources covering every sentence that some source supports.

    ``support`` maps a source id to the indices of the sentences it supports. Ties between
    covers of equal size are broken by the sorted source ids, so results are deterministic.
    """
    universe = set().union(*support.values()) if support else set()
    if not universe:
        return Cover(None, (), False)
    index = {sentence: bit for bit, sentence in enumerate(sorted(universe))}
    masks = {
        source: sum(1 << index[s] for s in sentences)
        for source, sentences in sorted(support.items())
        if sentences
    }
    candidates = _non_dominated(masks)
    full = (1 << len(universe)) - 1
    tried = 0
    for size in range(1, len(candidates) + 1):
        for combo in combinations(candidates, size):
            tried += 1
            if tried > EXACT_LIMIT:
                return _greedy(masks, full)
            union = 0
            for source in combo:
                union |= masks[source]
            if union == full:
                return Cover(size, combo, False)
    raise AssertionError("the candidates always cover the universe")  # pragma: no cover


def _non_dominated(masks: dict[str, int]) -> list[str]:
    """Drop sources whose sentences are a subset of another's (the lower id wins ties)."""
    kept = []
    for source, mask in masks.items():
        dominated = any(
            other != source
            and mask | other_mask == other_mask
            and (mask != other_mask or other < source)
            for other, other_mask in masks.items()
        )
        if not dominated:
            kept.append(source)
    return kept


def _greedy(masks: dict[str, int], full: int) -> Cover:
    chosen: list[str] = []
    covered = 0
    while covered != full:
        # max() keeps the first of equal gains: iterating in id order breaks ties by id
        best = max(sorted(masks), key=lambda s: (masks[s] & ~covered).bit_count())
        chosen.append(best)
        covered |= masks[best]
    return Cover(len(chosen), tuple(chosen), True)


def effective_sources(best_source: Mapping[int, str]) -> float | None:
    """exp(entropy) of sentence shares per best-supporting source; None without sentences."""
    if not best_source:
        return None
    counts: dict[str, int] = {}
    for source in best_source.values():
        counts[source] = counts.get(source, 0) + 1
    total = len(best_source)
    entropy = -sum(n / total * math.log(n / total) for n in counts.values())
    return math.exp(entropy)
