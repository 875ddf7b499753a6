"""Paired statistics for comparing two runs: percentile bootstrap intervals and a sign-flip
randomization test over paired differences (Holm-corrected across metrics), and vectorised
overlap@k / RBO of many pairs of top-k lists.

One random matrix is shared by the metrics, in chunks of ≈500k draws so memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from auditor.metrics.drift import RBO_P

CONFIDENCE = 0.95  # of the bootstrap interval
_CELLS = 1 << 19  # random draws per chunk: small enough to stay in cache


def paired_tests(
    diffs: np.ndarray, defined: np.ndarray, *, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of the (queries × metrics) paired differences: the percentile bootstrap
    interval of their mean and the two-sided sign-flip p-value, over the defined cells.

    NaN where a metric has no defined query. p = (#{|T*| >= |T|} + 1) / (resamples + 1),
    and 1 when every difference is zero.
    """
    m = diffs.shape[1]
    if diffs.size == 0:
        return np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    x = np.where(defined, diffs, 0.0)
    rng = np.random.default_rng(seed)
    p = _sign_flip_p(x, rng, resamples)
    low, high = _bootstrap_interval(x, defined, rng, resamples)
    p[~defined.any(axis=0)] = np.nan
    return low, high, p


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjustment over the p-values that are not None: monotone
    in the order of the raw p-values and capped at 1."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[i] = running
    return adjusted


def _chunk_rows(n: int, resamples: int) -> int:
    return max(1, min(resamples, _CELLS // max(n, 1)))


def _sign_flip_p(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """One random sign matrix for all metrics: T* = signs @ x, with x = 0 where undefined.
    A sign on a row of zeros changes nothing, so those rows are left out."""
    x = x[x.any(axis=1)]
    n, m = x.shape
    if n == 0:
        return np.ones(m)
    observed = x.sum(axis=0)
    # Summation order differs between T and T*: forgive float noise, not real differences.
    bar = np.abs(observed) - 1e-10 * np.abs(x).sum(axis=0)
    extreme = np.zeros(m, dtype=np.int64)
    rows = _chunk_rows(n, resamples)
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        bytes_ = rng.integers(0, 256, size=(size, (n + 7) // 8), dtype=np.uint8)
        plus = np.unpackbits(bytes_, axis=1, count=n).astype(np.float64)
        flipped = 2.0 * (plus @ x) - observed  # sum of +d for bit 1, -d for bit 0
        extreme += (np.abs(flipped) >= bar).sum(axis=0)
    p = (extreme + 1) / (resamples + 1)
    p[~x.any(axis=0)] = 1.0
    return p


def _bootstrap_interval(
    x: np.ndarray, defined: np.ndarray, rng: np.random.Generator, resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Metrics defined on the same queries share one bootstrap-count matrix, so each
    metric is resampled over exactly its own n queries."""
    m = x.shape[1]
    low, high = np.full(m, np.nan), np.full(m, np.nan)
    patterns, group = np.unique(defined.T, axis=0, return_inverse=True)
    tail = (1 - CONFIDENCE) / 2 * 100
    for g, rows in enumerate(patterns):
        columns = np.flatnonzero(group.ravel() == g)
        if not rows.any():
            continue
        means = _bootstrap_means(x[rows][:, columns], rng, resamples)
        low[columns], high[columns] = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def _bootstrap_means(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples × metrics) means of n rows drawn with replacement from x (n × m).

    Rows of zeros add nothing to a sum, so only the draws landing on the other rows are made:
    their number is Binomial(n, moving / n), and they fall uniformly on the moving rows. The
    same distribution as drawing all n, at a cost that grows with the queries that changed.
    """
    n = x.shape[0]
    moving = x[x.any(axis=1)]
    means = np.zeros((resamples, x.shape[1]))
    if not len(moving):
        return means
    rows = _chunk_rows(len(moving), resamples)
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        landed = rng.binomial(n, len(moving) / n, size)
        draws = rng.integers(0, len(moving), landed.sum())
        draws += np.repeat(np.arange(size) * len(moving), landed)
        counts = np.bincount(draws, minlength=size * len(moving)).reshape(size, -1)
        means[start:start + size] = counts.astype(np.float64) @ moving / n
    return means



def overlap_and_rbo(
    na: np.ndarray, nb: np.ndarray, qi: np.ndarray, depth: np.ndarray, k: int,
    p: float = RBO_P,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`~auditor.metrics.drift.overlap_at_k` and ``rbo`` for many pairs of
    distinct top-k lists, from their lengths and, per shared item, the depth at which both
    lists hold it (max of its two ranks). NaN where both lists are empty.

    RBO (Webber et al. 2010, eq. 32) with X_d = items shared by the depth-d prefixes.
    """
    q = len(na)
    short, long_ = np.minimum(na, nb), np.maximum(na, nb)
    entered = np.bincount(qi * k + depth - 1, minlength=q * k).reshape(q, k)
    x = entered.cumsum(axis=1).astype(np.float64)  # x[:, d - 1] = X_d
    d = np.arange(1, k + 1)
    weight = p ** d
    upto_long = d <= long_[:, None]
    s, big = np.maximum(short, 1), np.maximum(long_, 1)
    x_s, x_l = x[np.arange(q), s - 1], x[np.arange(q), big - 1]
    total = (x / d * weight * upto_long).sum(axis=1)
    beyond = upto_long & (d > short[:, None])
    total += (x_s[:, None] * (d - s[:, None]) / (s[:, None] * d) * weight * beyond).sum(axis=1)
    rbo = (1 - p) / p * total + ((x_l - x_s) / big + x_s / s) * p ** big
    rbo = np.where(short == 0, 0.0, rbo)
    overlap = x_l / big
    overlap[long_ == 0] = np.nan
    rbo[long_ == 0] = np.nan
    return overlap, rbo
