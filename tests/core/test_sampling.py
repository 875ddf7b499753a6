"""Sampling a log: deterministic selection across nights, honoured sizes and rates,
proportional strata, finite-population correction, and the coverage of the 95% interval."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pytest

from auditor.errors import ConfigError
from auditor.records import LogRecord
from auditor.sampling import (
    Design,
    allocate,
    estimate_mean,
    id_digests,
    sample_log,
    select,
    stratum_labels,
    unit_values,
)


def log(ids: list[str], segment: dict[str, str] | None = None) -> list[LogRecord]:
    segment = segment or {}
    return [LogRecord(query_id=q, query=f"text {q}", metadata={"segment": segment.get(q, "a")})
            for q in ids]


def picked_ids(records: list[LogRecord], design: Design) -> set[str]:
    sample = sample_log(records, design)
    return {r.query_id for r, p in zip(records, sample.picked, strict=True) if p}


def test_same_seed_picks_the_same_queries_on_two_nights() -> None:
    rng = np.random.default_rng(1)
    monday = [f"q{i}" for i in range(3000)]
    tuesday = [f"q{i}" for i in rng.permutation(np.arange(1000, 4000))]  # 2000 shared, reordered
    shared = set(monday) & set(tuesday)
    rate = Design(seed=7, rate=0.1)
    night1, night2 = picked_ids(log(monday), rate), picked_ids(log(tuesday), rate)
    assert night1 & shared == night2 & shared
    assert picked_ids(log(monday[::-1]), Design(seed=7, size=300)) == picked_ids(
        log(monday), Design(seed=7, size=300))
    assert picked_ids(log(monday), Design(seed=8, rate=0.1)) != night1


def test_fixed_size_samples_are_nested_across_nights() -> None:
    # the N smallest hash values: a shared id picked on the night with the lower threshold
    # is picked on the other night too
    monday, tuesday = [f"q{i}" for i in range(2000)], [f"q{i}" for i in range(1000, 3000)]
    night1 = picked_ids(log(monday), Design(seed=3, size=200))
    night2 = picked_ids(log(tuesday), Design(seed=3, size=200))
    shared = set(monday) & set(tuesday)
    small, large = sorted((night1 & shared, night2 & shared), key=len)
    assert small <= large and len(small) > 50


def test_id_digests_are_each_ids_blake2b_word() -> None:
    """The digest behind every night's selection; another would pick other queries than the
    nights before it."""
    ids = ["q1", "é-7", "", "x" * 300]
    expected = [int.from_bytes(hashlib.blake2b(q.encode(), digest_size=8).digest(), "little")
                for q in ids]
    assert id_digests(ids).tolist() == expected and id_digests([]).size == 0


def test_unit_values_are_uniform_and_seeded() -> None:
    digests = id_digests([f"id-{i}" for i in range(20_000)])
    u = unit_values(digests, seed=0)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.histogram(u, bins=10, range=(0, 1))[0] == pytest.approx(np.full(10, 2000), rel=0.1)
    assert abs(np.corrcoef(u, unit_values(digests, seed=1))[0, 1]) < 0.03
    assert np.array_equal(u, unit_values(digests, seed=0))


def test_rate_and_size_are_honoured() -> None:
    records = log([f"q{i}" for i in range(10_000)])
    assert sample_log(records, Design(seed=1, size=250)).n == 250
    assert abs(sample_log(records, Design(seed=1, rate=0.05)).n - 500) < 70  # 3 sd
    small = picked_ids(records, Design(seed=1, rate=0.02))
    assert small <= picked_ids(records, Design(seed=1, rate=0.05))
    assert sample_log(records, Design(seed=1, size=250)).describe() == "sampled: 250 of 10000"


def test_strata_get_proportional_allocation() -> None:
    ids = [f"q{i}" for i in range(1000)]
    segment = {q: ("big" if i < 700 else "mid" if i < 950 else "tiny") for i, q in enumerate(ids)}
    sample = sample_log(log(ids, segment), Design(seed=2, size=100, stratify_by="segment"))
    assert sample.strata == {"big": (700, 70), "mid": (250, 25), "tiny": (50, 5)}
    assert allocate([997, 1, 2], 10) == [7, 1, 2]  # the floor of two where a stratum has it
    assert sum(allocate([333, 333, 334], 100)) == 100
    assert allocate([5, 5], 3) == [2, 2]  # floors alone exceed the total
    rated = sample_log(log(ids, segment), Design(seed=2, rate=0.001, stratify_by="segment"))
    assert all(n >= 2 for _, n in rated.strata.values())


def test_time_strata_read_logged_at() -> None:
    at = [datetime(2026, 12, d, h, tzinfo=UTC) for d, h in ((4, 9), (4, 23), (5, 9))]
    records = [LogRecord(query_id=f"q{i}", query="x", logged_at=t) for i, t in enumerate(at)]
    records.append(LogRecord(query_id="q9", query="x"))
    assert stratum_labels(records, "day") == ["2026-12-04", "2026-12-04", "2026-12-05", "(none)"]
    assert stratum_labels(records, "hour")[:2] == ["2026-12-04T09", "2026-12-04T23"]


def test_design_rejects_contradictions() -> None:
    for kwargs in ({}, {"size": 5, "rate": 0.1}, {"size": 0}, {"rate": 1.5}):
        with pytest.raises(ConfigError):
            Design(**kwargs)


def test_a_census_has_a_zero_width_interval() -> None:
    values = np.linspace(0, 1, 90)
    labels = ["a"] * 30 + ["b"] * 60
    estimate = estimate_mean(values, labels, {"a": (30, 30), "b": (60, 60)})
    assert estimate.half_width == 0.0
    assert estimate.mean == pytest.approx(values.mean())
    assert (estimate.n, estimate.population) == (90, 90)


def test_undefined_values_are_left_out() -> None:
    values = np.array([1.0, 0.0, np.nan, 1.0])
    estimate = estimate_mean(values, ["a"] * 4, {"a": (40, 4)})
    assert estimate.mean == pytest.approx(2 / 3) and estimate.n == 3


def test_a_bounded_interval_is_clipped_to_its_bounds() -> None:
    """Nine hits in ten of 1000: the normal interval reaches past 1; clipped, it ends at 1
    and its lower end (inside the bounds) is unchanged."""
    values = np.array([1.0] * 9 + [0.0])
    estimate = estimate_mean(values, ["a"] * 10, {"a": (1000, 10)})
    assert estimate.mean + estimate.half_width > 1.0  # the unclipped interval
    bounded = estimate.within(0.0, 1.0)
    assert bounded.high == 1.0 and bounded.low == pytest.approx(estimate.low)
    assert (bounded.mean, bounded.half_width) == (estimate.mean, estimate.half_width)
    low = estimate_mean(1.0 - values, ["a"] * 10, {"a": (1000, 10)}).within(0.0, 1.0)
    assert low.low == 0.0 and low.high < 1.0


@pytest.mark.parametrize("design", [{"size": 400}, {"rate": 0.02}])
def test_the_95_percent_interval_covers_the_full_log_mean(design: dict[str, float]) -> None:
    """Three strata of very different recall, 2% stratified samples, 1000 seeds."""
    rng = np.random.default_rng(12)
    sizes, means = (10_000, 6_000, 4_000), (0.9, 0.5, 0.1)
    labels = np.concatenate([np.full(n, f"s{h}") for h, n in enumerate(sizes)])
    relevant = rng.integers(1, 5, labels.size)
    recall = rng.binomial(relevant, np.repeat(means, sizes)) / relevant
    digests = id_digests([f"q{i}" for i in range(labels.size)])
    truth, covered, draws = recall.mean(), 0, 1000
    for seed in range(draws):
        sample = select(unit_values(digests, seed), labels,
                        Design(seed=seed, stratify_by="segment", **design))
        estimate = estimate_mean(recall[sample.picked], labels[sample.picked], sample.strata)
        covered += estimate.low <= truth <= estimate.high
    assert 0.93 <= covered / draws <= 0.97, covered / draws
