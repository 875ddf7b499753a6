"""Sampling a query log, and estimating a mean from the sample with an honest interval.

Selection is by a hash of (seed, ``query_id``), not by a random generator: the same seed
and the same id give the same decision on any night, in any log order, so consecutive
nights audit the same queries where the log repeats them and paired comparisons keep
working. Each id is hashed once (BLAKE2b, 64 bits); the seed is mixed in with a vectorised
64-bit finalizer, so many seeds over one log cost NumPy time, not Python time.

Two designs, both optionally stratified (a metadata key, or ``day``/``hour`` of
``logged_at``):

- ``--sample N``: proportional allocation of N over the strata (largest remainders, at least
  two per stratum where the stratum has two), then the ids with the smallest hash values in
  each stratum: a simple random sample without replacement within each stratum.
- ``--sample-rate r``: every id whose hash value is below r (nested: a smaller rate picks a
  subset), topped up to two per stratum so every stratum has a variance.

The estimator (``estimate_mean``) is the stratified mean with finite-population correction.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.errors import ConfigError

if TYPE_CHECKING:
    from auditor.records import LogRecord

CONFIDENCE = 0.95
NO_STRATUM = "(none)"
TIME_STRATA = ("day", "hour")
MIN_PER_STRATUM = 2  # a stratum's variance needs two sampled units
_WORD = 0xFFFFFFFFFFFFFFFF
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # keeps seed 0 away from the zero word


@dataclass(frozen=True)
class Design:
    """How a sample is drawn: exactly one of ``size`` and ``rate``; ``stratify_by`` optional."""

    seed: int = 0
    size: int | None = None
    rate: float | None = None
    stratify_by: str | None = None

    def __post_init__(self) -> None:
        if (self.size is None) == (self.rate is None):
            raise ConfigError("a sample needs exactly one of --sample N and --sample-rate r")
        if self.size is not None and self.size < 1:
            raise ConfigError(f"--sample must be at least 1, got {self.size}")
        if self.rate is not None and not 0.0 < self.rate <= 1.0:
            raise ConfigError(f"--sample-rate must be in (0, 1], got {self.rate}")


@dataclass(frozen=True)
class Sample:
    """Which positions of the log were picked, and each stratum's population and sample size."""

    picked: np.ndarray  # bool, one per log record, in log order
    strata: dict[str, tuple[int, int]]  # stratum -> (N_h, n_h)
    design: Design

    @property
    def n(self) -> int:
        return int(self.picked.sum())

    @property
    def population(self) -> int:
        return int(self.picked.size)

    def describe(self) -> str:
        """The words shown wherever a sampled number appears: ``sampled: n of N``."""
        return f"sampled: {self.n} of {self.population}"


@dataclass(frozen=True)
class Estimate:
    """A design-based mean: ``mean ± half_width`` at ``CONFIDENCE``, from n of ``population``.

    A metric bounded to [0, 1] (recall, nDCG, ...) keeps its interval inside its bounds:
    ``low``/``high`` are clipped to ``lowest``/``highest`` (see :meth:`within`), as shown
    and as the gates read them; ``half_width`` stays the normal one."""

    mean: float
    half_width: float
    n: int
    population: int
    lowest: float = -math.inf
    highest: float = math.inf

    @property
    def low(self) -> float:
        return max(self.lowest, self.mean - self.half_width)

    @property
    def high(self) -> float:
        return min(self.highest, self.mean + self.half_width)

    def within(self, lowest: float, highest: float) -> Estimate:
        """The same estimate, its interval clipped to ``[lowest, highest]``."""
        return replace(self, lowest=lowest, highest=highest)


def id_digests(query_ids: Iterable[str]) -> np.ndarray:
    """One 64-bit BLAKE2b digest per id (seed-free, so it is computed once per log): each
    id's 8-byte digest read as a little-endian word."""
    blake2b = hashlib.blake2b
    joined = b"".join([blake2b(q.encode(), digest_size=8).digest() for q in query_ids])
    return np.frombuffer(joined, dtype="<u8").astype(np.uint64)


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: every input bit flips each output bit with p ~ 1/2."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def unit_values(digests: np.ndarray, seed: int) -> np.ndarray:
    """Uniform values in [0, 1), one per digest: a function of (seed, id) only."""
    with np.errstate(over="ignore"):
        seed_word = _fmix64(np.array([seed & _WORD], dtype=np.uint64) + _GOLDEN)[0]
        mixed = _fmix64(digests ^ seed_word)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def stratum_labels(records: Iterable[LogRecord], by: str | None) -> list[str]:
    """Each record's stratum: ``day``/``hour`` of ``logged_at`` (UTC), else a metadata key."""
    return [stratum_of(record.logged_at, record.metadata, by) for record in records]


def stratum_of(logged_at: datetime | None, metadata: dict[str, Any] | None,
               by: str | None) -> str:
    """One query's stratum, from what the log gave and the store keeps (the estimator reads
    it back from the stored rows). A naive ``logged_at`` is taken as UTC."""
    if by is None:
        return NO_STRATUM
    if by in TIME_STRATA:
        if logged_at is None:
            return NO_STRATUM
        at = logged_at.astimezone(UTC) if logged_at.tzinfo is not None else logged_at
        return at.strftime("%Y-%m-%d" if by == "day" else "%Y-%m-%dT%H")
    value = (metadata or {}).get(by)
    return NO_STRATUM if value is None else str(value)


def allocate(sizes: Sequence[int], total: int) -> list[int]:
    """Proportional allocation of ``total`` over strata of ``sizes`` (largest remainders).

    A stratum whose share falls below ``min(MIN_PER_STRATUM, N_h)`` is pinned at that floor
    and the rest is shared among the others, so the sum exceeds ``total`` only when the floors
    alone do.
    """
    sizes_a = np.asarray(sizes, dtype=np.int64)
    total = min(total, int(sizes_a.sum()))
    floor = np.minimum(sizes_a, MIN_PER_STRATUM)
    pinned = np.zeros(sizes_a.size, dtype=bool)
    while True:
        free = ~pinned
        budget = max(total - int(floor[pinned].sum()), 0)
        alloc = np.where(pinned, floor, _largest_remainders(sizes_a * free, budget))
        below = free & (alloc < floor)
        if not below.any():
            return [int(a) for a in alloc]
        pinned |= below


def _largest_remainders(sizes: np.ndarray, total: int) -> np.ndarray:
    population = int(sizes.sum())
    if population == 0:
        return np.zeros(sizes.size, dtype=np.int64)
    quota = sizes * total / population
    alloc = np.floor(quota).astype(np.int64)
    for index in np.argsort(-(quota - alloc), kind="stable")[: total - int(alloc.sum())]:
        alloc[index] += 1
    return alloc


def select(values: np.ndarray, labels: Sequence[str] | np.ndarray, design: Design) -> Sample:
    """The sample of ``design`` given each record's unit value and stratum label."""
    names, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    by_stratum = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_stratum], np.arange(names.size + 1))
    members = [by_stratum[bounds[h]:bounds[h + 1]] for h in range(names.size)]
    if design.size is not None:
        wanted = allocate([index.size for index in members], design.size)
    else:
        wanted = [min(index.size, MIN_PER_STRATUM) for index in members]
    picked = np.zeros(values.size, dtype=bool)
    strata: dict[str, tuple[int, int]] = {}
    for name, index, floor in zip(names, members, wanted, strict=True):
        own = values[index]
        chosen = index[np.argpartition(own, floor - 1)[:floor]] if floor else index[:0]
        if design.rate is not None:
            chosen = np.union1d(chosen, index[own < design.rate])
        picked[chosen] = True
        strata[str(name)] = (int(index.size), int(chosen.size))
    return Sample(picked=picked, strata=strata, design=design)


def sample_log(records: Sequence[LogRecord], design: Design) -> Sample:
    """The sample of a read log (the edge where pydantic records meet the arrays)."""
    digests = id_digests([r.query_id for r in records])
    return select(unit_values(digests, design.seed), stratum_labels(records, design.stratify_by),
                  design)


def estimate_mean(values: np.ndarray, labels: Sequence[str],
                  strata: dict[str, tuple[int, int]]) -> Estimate:
    """Stratified mean of the sampled ``values`` with a 95% normal-quantile interval.

    mean = sum_h W_h ybar_h and var = sum_h W_h^2 (1 - n_h/N_h) s_h^2 / n_h, with
    W_h = N_h/N (``strata`` gives N_h and n_h; ``labels`` the stratum of each value).
    A NaN value (a metric undefined for that query) is left out, and the stratum's N_h is
    scaled by its share of defined values (the usual domain approximation).
    A stratum with one defined value borrows the pooled within-stratum variance.

    The quantile is the normal's (1.96), not Student's t: the audits this serves sample
    hundreds to thousands of queries, where t's quantile is within 1% of 1.96, and the
    Satterthwaite degrees of freedom a stratified t needs would add scipy as a dependency for
    no visible gain. The coverage simulation in tests/core/test_sampling.py and
    bench/sampling.py checks the choice (95% CIs cover the full-log mean 93-97% of the time).
    A census (n_h = N_h everywhere) has zero width.
    """
    values = np.asarray(values, dtype=np.float64)
    labels_a = np.asarray(labels, dtype=str)
    rows = []
    for name, (size, drawn) in strata.items():
        own = values[labels_a == name]
        defined = own[~np.isnan(own)]
        if drawn == 0 or defined.size == 0:
            continue
        share = defined.size / max(drawn, own.size)
        var = float(defined.var(ddof=1)) if defined.size > 1 else np.nan
        rows.append((size * share, defined.size, float(defined.mean()), var))
    if not rows:
        return Estimate(mean=float("nan"), half_width=float("nan"), n=0,
                        population=sum(s for s, _ in strata.values()))
    sizes, counts, means, variances = (
        np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    pooled = _pooled_variance(counts, variances)
    variances = np.where(np.isnan(variances), pooled, variances)
    weights = sizes / sizes.sum()
    fpc = np.clip(1.0 - counts / np.maximum(sizes, counts), 0.0, 1.0)
    var = float(np.sum(weights**2 * fpc * variances / counts))
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    return Estimate(mean=float(np.sum(weights * means)), half_width=z * var**0.5,
                    n=int(counts.sum()), population=sum(s for s, _ in strata.values()))


def _pooled_variance(counts: np.ndarray, variances: np.ndarray) -> float:
    known = ~np.isnan(variances)
    dof = counts[known] - 1
    return float(np.sum(dof * variances[known]) / dof.sum()) if dof.sum() > 0 else 0.0
