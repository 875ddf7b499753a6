"""The store gives back what it was given: property-based round trips through a real DuckDB
file (run settings, per-query rows, metric means, the embedding cache), for any text, any
JSON and any float a run can produce. One store file per test (creating a file per example
is most of the time), one fresh run id per example. Seconds, no model and no index."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.store import Store
from auditor.store.read.run_facts import DocHits, doc_hits

EXAMPLES = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # any encodable text
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
SCORE = st.floats(0, 1, allow_nan=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("roundtrip") / "audit.duckdb")


def _create(store: Store, run_id: str | None = None, config: dict[str, Any] | None = None,
            fingerprint: dict[str, Any] | None = None) -> str:
    """A new run; its id is fresh unless given."""
    run_id = run_id or uuid.uuid4().hex
    store.create_run(run_id, backend="embedded", mode="bm25", level="doc",
                     config=config or {}, fingerprint=fingerprint or {}, code_version="test")
    return run_id


@EXAMPLES
@given(run_id=TEXT.filter(bool), config=st.dictionaries(TEXT, JSON, max_size=6),
       fingerprint=st.dictionaries(TEXT, JSON, max_size=6))
def test_run_settings_round_trip(store: Store, run_id: str, config: dict[str, Any],
                                 fingerprint: dict[str, Any]) -> None:
    run_id = f"{uuid.uuid4().hex}-{run_id}"
    _create(store, run_id, config, fingerprint)
    run = store.run(run_id)
    assert (run["run_id"], run["config"], run["fingerprint"]) == (run_id, config, fingerprint)
    assert run_id in {r["run_id"] for r in store.runs()}


@EXAMPLES
@given(values=st.dictionaries(st.sampled_from(["recall@10", "ndcg@10", "mrr@1", "scatter_docs"]),
                              st.lists(st.none() | SCORE, min_size=1, max_size=20), min_size=1))
def test_metric_means_count_defined_and_undefined_values(
        store: Store, values: dict[str, list[float | None]]) -> None:
    run_id = _create(store)
    store.append({"metrics": pa.concat_tables([pa.table({
        "run_id": [run_id] * len(column), "query_id": [f"q{i}" for i in range(len(column))],
        "metric": [metric] * len(column), "value": pa.array(column, pa.float64())})
        for metric, column in values.items()])})
    means = {row["metric"]: row for row in store.metric_means(run_id)}
    assert set(means) == set(values)
    for metric, column in values.items():
        defined = [v for v in column if v is not None]
        row = means[metric]
        assert (row["n"], row["undefined"]) == (len(defined), len(column) - len(defined))
        if defined:
            assert math.isclose(row["mean"], sum(defined) / len(defined), abs_tol=1e-12)
        else:
            assert row["mean"] is None


HIT = st.tuples(TEXT.filter(bool), TEXT.filter(bool), SCORE)  # chunk id, doc id, score


@EXAMPLES
@given(query_id=TEXT.filter(bool), query=TEXT, hits=st.lists(HIT, max_size=12),
       metrics=st.dictionaries(st.sampled_from(["recall@10", "ndcg@10"]), st.none() | SCORE))
def test_one_query_comes_back_as_it_was_stored(
        store: Store, query_id: str, query: str, hits: list[tuple[str, str, float]],
        metrics: dict[str, float | None]) -> None:
    run_id, n = _create(store), len(hits)
    store.append({
        "query_results": pa.table({"run_id": [run_id], "seq": [0], "query_id": [query_id],
                                   "query": [query], "status": ["ok" if n else "empty"],
                                   "n_hits": pa.array([n], pa.int32())}),
        "hits": pa.table({
            "run_id": [run_id] * n, "seq": [0] * n, "query_id": [query_id] * n,
            "rank": pa.array(range(1, n + 1), pa.int32()),
            "chunk_id": [h[0] for h in hits], "doc_id": [h[1] for h in hits],
            "score": pa.array([h[2] for h in hits], pa.float64())}),
        "metrics": pa.table({
            "run_id": [run_id] * len(metrics), "query_id": [query_id] * len(metrics),
            "metric": list(metrics), "value": pa.array(list(metrics.values()), pa.float64())}),
    })
    trace = store.query_trace(run_id, query_id)
    assert (trace["result"]["query"], trace["result"]["n_hits"]) == (query, n)
    assert [(h["rank"], h["chunk_id"], h["doc_id"], h["score"]) for h in trace["hits"]] == [
        (rank, *hit) for rank, hit in enumerate(hits, start=1)]
    assert trace["metrics"] == metrics


@EXAMPLES
@given(vectors=st.dictionaries(TEXT, st.lists(st.floats(-1e6, 1e6, width=32), min_size=4,
                                              max_size=4), min_size=1, max_size=8),
       absent=TEXT)
def test_embedding_cache_returns_the_vectors_and_keeps_the_first(
        store: Store, vectors: dict[str, list[float]], absent: str) -> None:
    _create(store)  # the first write creates the schema
    prefix = uuid.uuid4().hex  # keys of earlier examples stay in the shared store
    vectors = {prefix + key: vector for key, vector in vectors.items()}

    def put(rows: dict[str, list[float]]) -> None:
        store.append({"embeddings": pa.table({
            "key": list(rows), "model": ["hash"] * len(rows),
            "vector": pa.array(list(rows.values()), pa.list_(pa.float32()))})})

    put(vectors)
    put({key: [0.0] * 4 for key in vectors})  # a second write of a key is ignored
    found = store.embeddings([*vectors, prefix + absent])
    assert set(found) == set(vectors)
    for key, vector in vectors.items():
        np.testing.assert_array_equal(found[key], np.asarray(vector, np.float32))


@EXAMPLES
@given(queries=st.lists(st.lists(st.sampled_from("abcde"), max_size=8), min_size=1,
                        max_size=12), k=st.integers(1, 4), slice_rows=st.integers(1, 20))
def test_per_document_hits_are_the_same_read_in_slices(
        store: Store, queries: list[list[str]], k: int, slice_rows: int) -> None:
    """The corpus pass reads a run's hits in slices of queries (a 1M-query run in one
    scan ran out of memory): the per-document counts are those of the whole run."""
    run_id = _create(store)
    rows = [(seq, rank, doc) for seq, docs in enumerate(queries)
            for rank, doc in enumerate(docs, start=1)]
    store.append({"hits": pa.table({
        "run_id": [run_id] * len(rows), "seq": [r[0] for r in rows],
        "query_id": [f"q{r[0]}" for r in rows], "rank": pa.array([r[1] for r in rows], pa.int32()),
        "chunk_id": [f"{r[2]}#{r[1]}" for r in rows], "doc_id": [r[2] for r in rows],
        "score": [1.0] * len(rows)})})
    expected = {doc: DocHits(
        sum(doc in docs[:k] for docs in queries), sum(doc in docs for docs in queries),
        min(docs.index(doc) + 1 for docs in queries if doc in docs))
        for doc in {r[2] for r in rows}}
    assert doc_hits(store, run_id, k, slice_rows) == expected
