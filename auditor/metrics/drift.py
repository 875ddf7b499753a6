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
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def drift_many(served: Sequence[Sequence[str]], replayed: pa.Array, lengths: np.ndarray,
               ks: Sequence[int], p: float = RBO_P
               ) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """``overlap_at_k`` at each k and ``rbo`` of many (served, replayed) pairs at once, equal
    to theirs bit for bit: the same integer counts, and RBO's terms added in the same order
    (``np.add.accumulate`` adds left to right). Why: query by query they were the largest
    Python loop of a batch's tables (bench/scale.py).

    ``served``: non-empty lists; ``replayed``: every pair's replayed ids concatenated
    (``lengths[i]`` of them for pair i), each list without repeats. Returns overlap by k,
    rbo, and which served lists repeat an id: their values here are not the functions'.
    """
    n = len(served)
    a_len = np.fromiter(map(len, served), np.int64, n)
    b_len = np.asarray(lengths, dtype=np.int64)
    a_ids = pa.array(list(chain.from_iterable(served)), pa.string())
    both = pc.dictionary_encode(pa.concat_arrays([a_ids, replayed.cast(pa.string())]))
    codes = both.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(codes.max(initial=0)) + 1
    a_q, a_rank = _positions(a_len)
    b_q, b_rank = _positions(b_len)
    a_key = a_q * width + codes[:len(a_ids)]
    _, first = np.unique(a_key, return_index=True)
    repeats = np.bincount(a_q, minlength=n) != np.bincount(a_q[first], minlength=n)
    b_key = b_q * width + codes[len(a_ids):]
    order = np.argsort(b_key, kind="stable")
    at = np.minimum(np.searchsorted(b_key[order], a_key), max(len(b_key) - 1, 0))
    common = (b_key[order][at] == a_key) if len(b_key) else np.zeros(len(a_key), bool)
    # an item shared by both lists is in both top-d from d = the larger of its two ranks
    both_from = np.maximum(a_rank[common], b_rank[order][at][common])
    depth = int(max(a_len.max(initial=0), b_len.max(initial=0)))
    counts = np.zeros((n, depth + 1), dtype=np.int64)
    np.add.at(counts, (a_q[common], both_from), 1)
    shared = np.cumsum(counts, axis=1)  # shared[i, d]: items in both top-d lists of pair i
    rows = np.arange(n)
    overlap = {k: shared[rows, min(k, depth)] / np.maximum(np.minimum(k, a_len),
                                                           np.minimum(k, b_len))
               for k in ks}
    rank_biased = _rbo_many(shared, np.minimum(a_len, b_len), np.maximum(a_len, b_len), p)
    return overlap, rank_biased, repeats


def _positions(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each element's list and 1-based rank, for lists of ``lengths`` laid end to end."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return owner, np.arange(int(lengths.sum())) - starts[owner] + 1


def _rbo_many(shared: np.ndarray, s: np.ndarray, big: np.ndarray, p: float) -> np.ndarray:
    """:func:`rbo` for every row: its terms laid out in the order the loops add them (one
    per depth up to ``s``, two per depth beyond it), zeros where a loop adds nothing."""
    n, width = shared.shape
    d = np.arange(1, width)
    powers = np.asarray(_powers(p, width - 1))
    x_d = shared[:, 1:]
    rows = np.arange(n)
    x_s = shared[rows, s][:, None]
    s_col, big_col = s[:, None], big[:, None]
    terms = np.zeros((n, 2 * (width - 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms[:, 0::2] = np.where(d <= big_col, x_d / d * powers[d], 0.0)
        terms[:, 1::2] = np.where((d > s_col) & (d <= big_col),
                                  x_s * (d - s_col) / (s_col * d) * powers[d], 0.0)
        total = np.add.accumulate(terms, axis=1)[:, -1] if terms.shape[1] else np.zeros(n)
        x_big = shared[rows, big]
        extrapolated = ((x_big - x_s[:, 0]) / big + x_s[:, 0] / s) * powers[big]
        value = (1 - p) / p * total + extrapolated
    return np.where(s == 0, 0.0, value)
