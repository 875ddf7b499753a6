"""Drift: how far what replay returns now is from what production served.

- ``overlap@k`` = |top-k(served) ∩ top-k(replayed)| / max(|top-k(served)|, |top-k(replayed)|):
  1 for identical lists, also when production served fewer than k items; null when both
  lists are empty.
- ``rbo`` = extrapolated rank-biased overlap (Webber, Moffat & Zobel 2010, eq. 32), p = 0.9:
  agreement weighted towards the top, for lists of different lengths. Written here because
  it is twenty lines and no well-kept library carries it; the tests check it against the
  ``rbo`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

RBO_P = 0.9


def overlap_at_k(served: Sequence[str], replayed: Sequence[str], k: int) -> float | None:
    top_a, top_b = set(served[:k]), set(replayed[:k])
    size = max(len(top_a), len(top_b))
    return len(top_a & top_b) / size if size else None


def rbo(served: Sequence[str], replayed: Sequence[str], p: float = RBO_P) -> float | None:
    """Extrapolated RBO in [0, 1]; null when both lists are empty, 0 when one is.

    Two loops (ranks within the shorter list, then beyond it) and the powers of ``p`` looked
    up, not recomputed: the same sums in the same order, at a third of the CPU (it is run
    on every query with a served list, at depth 100: bench/scale.py)."""
    if not served and not replayed:
        return None
    if not served or not replayed:
        return 0.0
    short, long_ = (served, replayed) if len(served) <= len(replayed) else (replayed, served)
    s, big = len(short), len(long_)
    powers = _powers(p, big)
    seen_short: set[str] = set()
    seen_long: set[str] = set()
    overlap = 0
    total = 0.0
    for d in range(1, s + 1):
        item_short, item_long = short[d - 1], long_[d - 1]
        if item_short == item_long:
            overlap += 1
        else:
            overlap += (item_short in seen_long) + (item_long in seen_short)
        seen_short.add(item_short)
        seen_long.add(item_long)
        total += overlap / d * powers[d]
    x_s = overlap
    for d in range(s + 1, big + 1):
        if long_[d - 1] in seen_short:
            overlap += 1
        total += overlap / d * powers[d]
        total += x_s * (d - s) / (s * d) * powers[d]
    extrapolated = ((overlap - x_s) / big + x_s / s) * powers[big]
    return (1 - p) / p * total + extrapolated


@lru_cache(maxsize=8)
def _powers(p: float, n: int) -> tuple[float, ...]:
    """``p**d`` for d = 0..n, each computed as ``p**d`` is."""
    return tuple(p**d for d in range(n + 1))
