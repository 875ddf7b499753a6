"""Run comparison on real audits of the SciFact slice (same index, then an index that lost
relevant documents) and at the scale of 100k queries (the statistics and a store built by
hand are in tests/core/test_compare.py)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from auditor.audit import run_audit
from auditor.backends.embedded import EmbeddedBackend
from auditor.compare import compare_runs
from auditor.config import load_settings
from auditor.corpus_reader import read_corpus
from auditor.embed import load_encoder
from auditor.metrics.drift import overlap_at_k, rbo
from auditor.store import Store
from tests.conftest import FIXTURES

SCIFACT = FIXTURES / "scifact"


# real audits of the SciFact slice --------------------------------------------------------
def _audit(tmp: Path, store: Path, backend: EmbeddedBackend, index: Path) -> str:
    config = tmp / "empty.toml"  # no audit.toml from the working directory
    config.touch()
    settings = load_settings(config, log=SCIFACT / "log.jsonl", qrels=SCIFACT / "qrels.tsv",
                             store=store, encoder="hash", mode="bm25", index=index)
    run_id, status = run_audit(settings, backend=backend)
    assert status == "complete"
    return run_id


def _removed_docs() -> dict[str, set[str]]:
    """All relevant documents of the first five judged queries: they leave the index."""
    with (SCIFACT / "qrels.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    chosen = list(dict.fromkeys(r["query-id"] for r in rows))[:5]
    return {q: {r["corpus-id"] for r in rows if r["query-id"] == q} for q in chosen}


@pytest.fixture(scope="module")
def scifact_runs(tmp_path_factory: pytest.TempPathFactory,
                 scifact_index: EmbeddedBackend) -> tuple[Store, str, str, str]:
    """A store with the SciFact log audited twice on the full index, then once on an index
    without the relevant documents of five queries."""
    tmp = tmp_path_factory.mktemp("compare")
    path = tmp / "audit.duckdb"
    first = _audit(tmp, path, scifact_index, tmp / "index")
    again = _audit(tmp, path, scifact_index, tmp / "index")
    removed = set().union(*_removed_docs().values())
    chunks = [c for c in read_corpus(SCIFACT / "corpus.jsonl") if c.doc_id not in removed]
    degraded = EmbeddedBackend.build(chunks, tmp / "degraded", load_encoder("hash"))
    worse = _audit(tmp, path, degraded, tmp / "degraded")
    return Store(path), first, again, worse


def test_same_index_twice_changes_nothing(scifact_runs: tuple[Store, str, str, str]) -> None:
    store, first, again, _ = scifact_runs
    c = compare_runs(store, first, again, resamples=1_000)
    assert c.shared_queries == 50 and c.only_baseline == c.only_current == 0
    assert {m.metric for m in c.metrics} >= {"recall@10", "ndcg@10", "mrr@10"}
    for m in c.metrics:
        assert m.n > 0 and m.delta == 0 and m.ci_low == m.ci_high == 0
        assert m.p_value == m.p_holm == 1.0
    assert c.regressed == c.improved == c.new_causes == c.resolved_causes == []
    assert all(row["baseline"] == row["current"] for row in c.cause_counts)
    assert c.drift["overlap"] == c.drift["rbo"] == 1.0 and c.drift["changed"] == 0


def test_lost_documents_regress(scifact_runs: tuple[Store, str, str, str]) -> None:
    store, first, _, worse = scifact_runs
    c = compare_runs(store, first, worse, resamples=2_000)
    recall = c.metric("recall@10")
    assert recall is not None and recall.n == 50
    assert recall.delta < 0 and recall.ci_low < 0 and recall.current_mean < recall.baseline_mean
    lost = set(_removed_docs())
    by_query = {q.query_id: q for q in c.regressed}
    for query_id in lost:
        change = by_query[query_id]
        assert change.current < change.baseline and change.metric in {
            m.metric for m in c.metrics}
        assert "not_indexed" in change.causes_after
        assert "not_indexed" not in change.causes_before
        assert change.query  # the query text
    new = {(n.query_id, n.cause) for n in c.new_causes}
    assert {(q, "not_indexed") for q in lost} <= new
    assert c.drift["overlap"] < 1 and c.drift["changed"] > 0


def test_drift_on_real_runs_equals_the_reference(
        scifact_runs: tuple[Store, str, str, str]) -> None:
    store, first, _, worse = scifact_runs
    k = 10
    c = compare_runs(store, first, worse, k=k, resamples=200)
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT run_id, query_id, doc_id FROM hits WHERE run_id IN (?, ?) "
            "ORDER BY run_id, query_id, rank", [first, worse]).fetchall()
    lists: dict[tuple[str, str], list[str]] = {}
    for run_id, query_id, doc_id in rows:
        docs = lists.setdefault((run_id, query_id), [])
        if doc_id not in docs:
            docs.append(doc_id)
    queries = {q for _, q in lists}
    pairs = [(lists.get((first, q), [])[:k], lists.get((worse, q), [])[:k]) for q in queries]
    overlaps = [overlap_at_k(a, b, k) for a, b in pairs]
    assert c.drift["n"] == sum(o is not None for o in overlaps)
    assert c.drift["overlap"] == pytest.approx(np.mean([o for o in overlaps if o is not None]),
                                               abs=1e-12)
    assert c.drift["rbo"] == pytest.approx(np.mean([rbo(a, b) for a, b in pairs if a or b]),
                                           abs=1e-12)
    assert c.drift["changed"] == sum(a != b for a, b in pairs)
    assert c.drift["worst"][0]["overlap"] == min(o for o in overlaps if o is not None)


# scale ---------------------------------------------------------------------------------------
def _scale_store(path: Path, n: int) -> tuple[Store, dict[str, float], dict[str, int]]:
    """Two runs of ``n`` queries × 6 headline metrics with planted shifts; returns the true
    mean differences and the counts the comparison should report."""
    rng = np.random.default_rng(0)
    store = Store(path)
    ids = np.array([f"q{i:06d}" for i in range(n)])
    base = {
        "recall@10": rng.choice([0.0, 0.5, 1.0], n, p=[0.2, 0.2, 0.6]),
        "ndcg@10": rng.random(n),
        "mrr@10": 1.0 / rng.integers(1, 11, n),
        "answer_coverage@10": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n),
        "silver_recall@10": rng.choice([0.0, 1.0], n),
        "scatter_docs": rng.integers(1, 5, n).astype(float),
    }
    cur = dict(base)
    cur["recall@10"] = np.where(rng.random(n) < 0.05, 0.0, base["recall@10"])  # drop
    cur["ndcg@10"] = np.clip(base["ndcg@10"] + rng.normal(0, 0.05, n), 0, 1)  # every query
    cur["answer_coverage@10"] = np.where(
        rng.random(n) < 0.1, np.minimum(base["answer_coverage@10"] + 0.25, 1), base[
            "answer_coverage@10"])
    no_answer = rng.random(n) < 0.3  # coverage undefined there: a second bootstrap group
    truth = {name: float(np.mean(cur[name] - base[name])) for name in base}
    truth["answer_coverage@10"] = float(np.mean(
        (cur["answer_coverage@10"] - base["answer_coverage@10"])[~no_answer]))
    gains = np.array([(base[m] - cur[m]) if m == "scatter_docs" else (cur[m] - base[m])
                      for m in base])
    gains[list(base).index("answer_coverage@10"), no_answer] = 0.0
    regressed = (gains < -1e-9).any(axis=0)
    counts = {"coverage_n": int((~no_answer).sum()), "regressed": int(regressed.sum()),
              "improved": int(((gains > 1e-9).any(axis=0) & ~regressed).sum())}
    for run_id, values in (("base", base), ("cur", cur)):
        store.create_run(run_id, backend="embedded", mode="bm25", level="doc", config={},
                         fingerprint={}, code_version="test")
        docs = rng.integers(0, 5_000, (n, 10)).astype(str)
        coverage = pa.array(values["answer_coverage@10"], mask=no_answer)
        store.append({
            "query_results": pa.table({
                "run_id": [run_id] * n, "seq": np.arange(n), "query_id": ids, "query": ids,
                "status": ["ok"] * n, "n_hits": np.full(n, 10, np.int32)}),
            "metrics": pa.concat_tables([pa.table({
                "run_id": [run_id] * n, "query_id": ids, "metric": [name] * n,
                "value": coverage if name == "answer_coverage@10" else values[name]})
                for name in values]),
            "hits": pa.table({
                "run_id": [run_id] * (n * 10), "seq": np.repeat(np.arange(n), 10),
                "query_id": np.repeat(ids, 10), "rank": np.tile(np.arange(1, 11, dtype=np.int32),
                                                                 n),
                "chunk_id": docs.ravel(), "doc_id": docs.ravel(), "score": np.ones(n * 10)}),
        })
    return store, truth, counts


def test_scale_100k_queries(tmp_path: Path) -> None:
    n = 100_000
    store, truth, counts = _scale_store(tmp_path / "big.duckdb", n)
    started = time.perf_counter()
    c = compare_runs(store, "base", "cur")
    elapsed = time.perf_counter() - started
    print(f"compare_runs on {n:,} queries × 6 metrics: {elapsed:.1f} s")
    assert c.shared_queries == n
    by_name = {m.metric: m for m in c.metrics}
    assert set(by_name) == set(truth)
    for name, m in by_name.items():
        assert m.n == (counts["coverage_n"] if name == "answer_coverage@10" else n)
        if name in ("recall@10", "ndcg@10", "answer_coverage@10"):
            assert m.delta == pytest.approx(truth[name], abs=1e-12)
            assert m.ci_low < m.delta < m.ci_high and m.ci_high - m.ci_low < 0.01
        else:
            assert m.delta == 0 and m.p_value == 1.0
    assert by_name["recall@10"].p_holm < 0.001  # 5% of queries lost recall
    assert by_name["answer_coverage@10"].p_holm < 0.001 < by_name["answer_coverage@10"].delta
    assert (c.regressed_total, c.improved_total) == (counts["regressed"], counts["improved"])
    assert len(c.regressed) == len(c.improved) == 100
    assert c.regressed[0].delta <= c.regressed[-1].delta  # worst first (all higher-is-better)
    assert c.drift["n"] == n and c.drift["overlap"] < 0.1 and len(c.drift["worst"]) == 20
