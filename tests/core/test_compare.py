"""Run comparison: the statistics against scipy and a hand-worked Holm example, exact numbers on
a store built by hand (real audits and the 100k-query scale:
tests/integration/test_compare_runs.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from auditor.compare import (
    CauseChange,
    compare_runs,
    comparison_table,
    holm,
    overlap_and_rbo,
    paired_tests,
)
from auditor.gates import gates_table
from auditor.metrics.drift import overlap_at_k, rbo
from auditor.store import Store, StoreError
from tests.conftest import FIXTURES

SCIFACT = FIXTURES / "scifact"


# statistics against independent references -----------------------------------------------
def test_holm_hand_worked() -> None:
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → kept at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx(
        [0.03, 0.06, 0.06, 0.02, None])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, monotone
    assert holm([0.2]) == [0.2] and holm([None]) == [None] and holm([]) == []


def _exact_sign_flip_p(d: np.ndarray) -> float:
    """Share of all 2^n sign assignments at least as extreme as the observed sum."""
    observed = abs(d.sum())
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=len(d))))
    return float(np.mean(np.abs(signs @ d) >= observed - 1e-12))


def _scipy_paired_p(current: np.ndarray, baseline: np.ndarray) -> float:
    def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    result = stats.permutation_test(
        (current, baseline), mean_diff, permutation_type="samples", vectorized=True,
        n_resamples=np.inf, alternative="two-sided")
    return float(result.pvalue)


def test_sign_flip_p_matches_exact_permutation_test() -> None:
    rng = np.random.default_rng(3)
    n, resamples = 12, 20_000
    baseline = rng.random((n, 3))
    current = baseline.copy()
    current[:, 0] += rng.normal(0.15, 0.3, n)  # continuous differences
    current[:, 1] += rng.choice([-1.0, 0.0, 0.5, 1.0], n)  # ties in |T*| matter here
    defined = np.ones((n, 3), dtype=bool)
    defined[:4, 2] = False  # the third metric is defined on 8 queries only
    current[4:, 2] += rng.choice([0.0, 0.25], n - 4)
    _, _, p = paired_tests(current - baseline, defined, resamples=resamples, seed=1)
    for j in range(3):
        rows = defined[:, j]
        exact = _scipy_paired_p(current[rows, j], baseline[rows, j])
        assert exact == pytest.approx(_exact_sign_flip_p(current[rows, j] - baseline[rows, j]))
        monte_carlo = 4 * np.sqrt(exact * (1 - exact) / resamples) + 2 / resamples
        assert abs(p[j] - exact) < monte_carlo, (j, p[j], exact)


def test_sign_flip_edges() -> None:
    diffs = np.zeros((5, 2))
    defined = np.array([[True, False]] * 5)
    low, high, p = paired_tests(diffs, defined, resamples=100, seed=0)
    assert p[0] == 1.0 and low[0] == 0.0 and high[0] == 0.0  # nothing moved
    assert np.isnan(p[1]) and np.isnan(low[1])  # never defined
    # Every query worse by the same amount: only the all-negative flip is as extreme.
    _, _, p = paired_tests(-np.ones((12, 1)), np.ones((12, 1), bool), resamples=20_000, seed=0)
    assert p[0] < 0.01


def test_bootstrap_interval_matches_scipy_percentile() -> None:
    rng = np.random.default_rng(5)
    n, resamples = 300, 20_000
    baseline = rng.random((n, 3))
    current = np.clip(baseline + rng.normal(-0.05, 0.2, (n, 3)), 0, 1)
    # third metric: 80% of queries unchanged, the others up by about 0.5
    current[:, 2] = baseline[:, 2] + np.where(rng.random(n) < 0.2, rng.normal(0.5, 0.05, n), 0)
    defined = np.ones((n, 3), dtype=bool)
    defined[::3, 1] = False  # second metric on 200 queries: its own bootstrap group
    defined[::5, 2] = False  # third: 240 queries, 80% unchanged (only moving rows are drawn)
    low, high, _ = paired_tests(current - baseline, defined, resamples=resamples, seed=2)
    for j in range(3):
        rows = defined[:, j]

        def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.mean(x - y, axis=axis)

        ref = stats.bootstrap(
            (current[rows, j], baseline[rows, j]), mean_diff, paired=True, vectorized=True,
            method="percentile", n_resamples=resamples, confidence_level=0.95, rng=7,
        ).confidence_interval
        width = ref.high - ref.low
        assert abs(low[j] - ref.low) < 0.04 * width and abs(high[j] - ref.high) < 0.04 * width
        assert low[j] < np.mean(current[rows, j] - baseline[rows, j]) < high[j]


def test_statistics_are_deterministic_given_seed() -> None:
    rng = np.random.default_rng(0)
    diffs, defined = rng.normal(size=(500, 3)), rng.random((500, 3)) > 0.2
    first = paired_tests(diffs, defined, resamples=2_000, seed=4)
    again = paired_tests(diffs, defined, resamples=2_000, seed=4)
    other = paired_tests(diffs, defined, resamples=2_000, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_vectorised_drift_equals_the_reference_functions() -> None:
    rng = np.random.default_rng(11)
    pool = [f"d{i}" for i in range(15)]
    k, pairs = 10, []
    for _ in range(400):
        a = list(rng.choice(pool, rng.integers(0, k + 1), replace=False))
        b = list(rng.choice(pool, rng.integers(0, k + 1), replace=False))
        pairs.append((a, b))
    qi, depth = [], []
    for i, (a, b) in enumerate(pairs):
        for doc in set(a) & set(b):
            qi.append(i)
            depth.append(max(a.index(doc), b.index(doc)) + 1)
    overlap, ours = overlap_and_rbo(
        np.array([len(a) for a, _ in pairs]), np.array([len(b) for _, b in pairs]),
        np.array(qi, dtype=np.int64), np.array(depth, dtype=np.int64), k)
    for i, (a, b) in enumerate(pairs):
        want_overlap, want_rbo = overlap_at_k(a, b, k), rbo(a, b)
        if want_overlap is None:
            assert np.isnan(overlap[i]) and np.isnan(ours[i]) and want_rbo is None
        else:
            assert overlap[i] == pytest.approx(want_overlap, abs=1e-12)
            assert ours[i] == pytest.approx(want_rbo, abs=1e-12)


# a store built by hand ----------------------------------------------------------------------
def _add_run(store: Store, run_id: str, *, queries: dict[str, str],
             metrics: dict[str, dict[str, float | None]],
             hits: dict[str, list[str]] | None = None,
             causes: list[tuple[str, str, str | None]] | None = None) -> None:
    """One run: query texts, metric values by metric then query, hit doc ids by query
    (``doc#n`` chunk ids may repeat a document) and (query, cause, target) diagnoses."""
    store.create_run(run_id, backend="embedded", mode="bm25", level="doc", config={},
                     fingerprint={}, code_version="test")
    hits, causes = hits or {}, causes or []
    ids = list(queries)
    rows_hits = [(q, r, chunk) for q, chunks in hits.items()
                 for r, chunk in enumerate(chunks, start=1)]
    rows_metrics = [(q, name, v) for name, values in metrics.items() for q, v in values.items()]
    store.append({
        "query_results": pa.table({
            "run_id": [run_id] * len(ids), "seq": list(range(len(ids))), "query_id": ids,
            "query": [queries[q] for q in ids], "status": ["ok"] * len(ids),
            "n_hits": [len(hits.get(q, [])) for q in ids]}),
        "metrics": pa.table({
            "run_id": [run_id] * len(rows_metrics), "query_id": [r[0] for r in rows_metrics],
            "metric": [r[1] for r in rows_metrics],
            "value": pa.array([r[2] for r in rows_metrics], pa.float64())}),
        "hits": pa.table({
            "run_id": [run_id] * len(rows_hits), "seq": [0] * len(rows_hits),
            "query_id": [r[0] for r in rows_hits], "rank": [r[1] for r in rows_hits],
            "chunk_id": [r[2] for r in rows_hits],
            "doc_id": [r[2].split("#")[0] for r in rows_hits],
            "score": [1.0 / r[1] for r in rows_hits]}),
        "diagnoses": pa.table({
            "run_id": [run_id] * len(causes), "query_id": [c[0] for c in causes],
            "cause": [c[1] for c in causes], "target_id": pa.array([c[2] for c in causes],
                                                                   pa.string()),
            "evidence": ["{}"] * len(causes)}),
    })


@pytest.fixture
def hand_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "hand.duckdb")
    shared = {f"q{i}": f"query {i}" for i in range(1, 7)}
    _add_run(
        store, "base", queries={**shared, "q7": "only in the baseline"},
        metrics={
            "recall@10": {"q1": 1.0, "q2": 0.5, "q3": 1.0, "q4": 0.0, "q5": 1.0, "q6": 0.5,
                          "q7": 1.0},
            "scatter_docs": {"q1": 1, "q2": 2, "q3": 1, "q4": 3, "q5": 1, "q6": None},
            "ndcg@10": {"q1": 0.5},  # only in the baseline
        },
        hits={"q1": ["A", "B", "C"], "q2": ["A", "B"], "q3": ["A#1", "A#2", "B"],
              "q5": [f"A#{i}" for i in range(8)] + ["B"]},  # B below the first 3k ranks
        causes=[("q2", "not_retrieved", "d2"), ("q1", "drifted", None),
                ("q7", "not_indexed", "d7")],
    )
    _add_run(
        store, "cur", queries={**{q: f"now {t}" for q, t in shared.items()}, "q8": "new"},
        metrics={
            "recall@10": {"q1": 1.0, "q2": 0.0, "q3": None, "q4": 1.0, "q5": 0.5, "q6": 0.0,
                          "q8": 0.0},
            "scatter_docs": {"q1": 3, "q2": 1, "q3": 1, "q4": 1, "q5": 1.5, "q6": 2},
        },
        hits={"q1": ["A", "B", "C"], "q2": ["B", "A"], "q3": ["A#1", "B", "C"], "q4": ["X"],
              "q5": ["B"]},
        causes=[("q2", "not_indexed", "d2"), ("q2", "not_retrieved", "d2"),
                ("q5", "ranked_below_k", "d5"), ("q8", "not_indexed", "d8")],
    )
    return store


def test_hand_store_numbers(hand_store: Store) -> None:
    c = compare_runs(hand_store, "base", "cur", resamples=2_000)
    assert (c.shared_queries, c.only_baseline, c.only_current) == (6, 1, 1)
    assert [m.metric for m in c.metrics] == ["recall@10", "scatter_docs"]  # ndcg not in both
    recall, scatter = c.metrics
    # recall: q3 undefined now, q7/q8 not shared → q1 q2 q4 q5 q6
    assert recall.n == 5 and not recall.lower_is_better
    assert recall.baseline_mean == pytest.approx(0.6) and recall.current_mean == pytest.approx(0.5)
    assert recall.delta == pytest.approx(-0.1)
    # scatter: q6 undefined in the baseline → q1..q5; lower is better
    assert scatter.n == 5 and scatter.lower_is_better
    assert (scatter.baseline_mean, scatter.current_mean) == pytest.approx((1.6, 1.5))
    assert scatter.delta == pytest.approx(-0.1)
    for m in c.metrics:
        assert m.ci_low <= m.delta <= m.ci_high and 0 < m.p_value <= m.p_holm <= 1

    # worse = recall down or scatter up; one change per query, the largest worsening.
    assert c.regressed_total == 4 and c.improved_total == 1
    assert [(q.query_id, q.metric, q.baseline, q.current, q.delta) for q in c.regressed] == [
        ("q1", "scatter_docs", 1, 3, 2),  # scatter +2 is the worst move
        ("q2", "recall@10", 0.5, 0.0, -0.5),  # also improved scatter: counts as regressed
        ("q5", "recall@10", 1.0, 0.5, -0.5),  # tie with scatter +0.5: metric order
        ("q6", "recall@10", 0.5, 0.0, -0.5),
    ]
    q2 = c.regressed[1]
    assert q2.query == "now query 2"
    assert q2.causes_before == ["not_retrieved"]
    assert q2.causes_after == ["not_indexed", "not_retrieved"]
    assert [(q.query_id, q.metric, q.delta) for q in c.improved] == [("q4", "scatter_docs", -2)]

    assert c.new_causes == [CauseChange("q2", "not_indexed", "d2"),
                            CauseChange("q5", "ranked_below_k", "d5")]  # q8 is not shared
    assert c.resolved_causes == [CauseChange("q1", "drifted", None)]  # q7 is not shared
    assert (c.new_causes_total, c.resolved_causes_total) == (2, 1)
    assert c.cause_counts == [
        {"cause": "not_retrieved", "baseline": 1, "current": 1},
        {"cause": "not_indexed", "baseline": 0, "current": 1},
        {"cause": "ranked_below_k", "baseline": 0, "current": 1},
        {"cause": "drifted", "baseline": 1, "current": 0},
    ]


def test_hand_store_drift_and_limits(hand_store: Store) -> None:
    c = compare_runs(hand_store, "base", "cur", metrics=["recall@10", "scatter_docs"], k=2,
                     resamples=500, limit=2)
    assert [q.query_id for q in c.regressed] == ["q1", "q2"] and c.regressed_total == 4
    assert len(c.new_causes) == 2 and len(c.resolved_causes) == 1
    # top-2 distinct documents: q1 [A B]=[A B]; q2 [A B]/[B A]; q3 [A B]=[A B] (chunk A#2
    # repeats A); q4 []/[X]; q5 [A B]/[B]; q6 empty in both runs → not counted.
    lists = {"q1": (["A", "B"], ["A", "B"]), "q2": (["A", "B"], ["B", "A"]),
             "q3": (["A", "B"], ["A", "B"]), "q4": ([], ["X"]), "q5": (["A", "B"], ["B"])}
    drift = c.drift
    assert (drift["k"], drift["n"], drift["changed"]) == (2, 5, 3)
    assert drift["overlap"] == pytest.approx(np.mean([overlap_at_k(a, b, 2)
                                                      for a, b in lists.values()]))
    assert drift["rbo"] == pytest.approx(np.mean([rbo(a, b) for a, b in lists.values()]))
    assert [w["query_id"] for w in drift["worst"]] == ["q4", "q5", "q2", "q1", "q3"]
    assert drift["worst"][0] == {"query_id": "q4", "query": "now query 4", "overlap": 0.0,
                                 "rbo": 0.0}


def test_explicit_metrics_and_missing_ones(hand_store: Store) -> None:
    c = compare_runs(hand_store, "base", "cur", metrics=["recall@10", "ndcg@10", "nope"],
                     resamples=500)
    assert [m.metric for m in c.metrics] == ["recall@10", "ndcg@10", "nope"]
    for missing in c.metrics[1:]:
        assert missing.n == 0
        assert missing.delta is missing.p_value is missing.p_holm is missing.ci_low is None
    assert c.metrics[0].p_holm == c.metrics[0].p_value  # the only defined p
    assert c.regressed_total == 3  # q1 moved only on scatter, which is not compared now


def test_comparison_table_fits_the_store(hand_store: Store) -> None:
    c = compare_runs(hand_store, "base", "cur", metrics=["recall@10", "nope"], resamples=500)
    table = comparison_table(c)
    with hand_store.connect(read_only=True) as con:
        columns = [row[0] for row in con.execute("DESCRIBE comparisons").fetchall()]
    assert table.column_names == columns and table.num_rows == 2
    hand_store.record_gates("cur", "base", gates_table("cur", []), table)
    rows = {r["metric"]: r for r in hand_store.comparison_rows("cur")}
    assert rows["recall@10"]["delta"] == pytest.approx(-0.1) and rows["recall@10"]["n"] == 5
    assert rows["nope"]["n"] == 0 and rows["nope"]["p_value"] is None
    assert json.loads(json.dumps(c.to_dict()))["metrics"][0]["metric"] == "recall@10"


def test_unknown_run_is_a_store_error(hand_store: Store) -> None:
    with pytest.raises(StoreError, match="no run 'nope'"):
        compare_runs(hand_store, "nope", "cur")
    with pytest.raises(StoreError, match="no run 'later'"):
        compare_runs(hand_store, "base", "later")
