"""``auditor.metrics`` checked against independent implementations.

The oracles are ``ir_measures`` (which routes R@k, P@k, Success@k and nDCG@k to
pytrec_eval, RR@k to its MS MARCO evaluator and Judged@k to its own Python code) and
``pytrec_eval`` directly. ``complete@k`` has no oracle measure of its own: it is
``R@k == 1``. Every value must agree to 1e-9.

Oracles sort a run by score (trec_eval breaks ties by doc id), while ``evaluate`` takes
the rank order it is given. So the oracles get scores derived from our rank
(``depth - rank + 1``, distinct per query) and can never reorder a ranking.

Where the definitions differ on purpose, the difference is asserted, not hidden:

- a query without a judged-relevant document is NaN for us (reported, not averaged) and
  0 for the oracles;
- ``judged@k`` of a query that got no hits is NaN for us (nothing to judge) and 0 for
  ``ir_measures``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from auditor.metrics import (
    MEASURES,
    Metric,
    MetricNameError,
    Qrels,
    evaluate,
    format_metric,
    metrics_for,
    parse_metric,
)

ir_measures = pytest.importorskip("ir_measures")
pytrec_eval = pytest.importorskip("pytrec_eval")

KS = (1, 5, 10, 100)
DEPTH = 100
TOLERANCE = 1e-9
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

Judgments = dict[str, dict[str, int]]
Rankings = dict[str, list[str]]  # query id -> ranked ids (chunk or doc level, duplicates kept)


# oracle plumbing -------------------------------------------------------------------------
def _oracle_measure(measure: str, k: int):
    """The ir_measures measure computing our ``measure@k`` (complete is derived from R@k)."""
    return {
        "recall": ir_measures.R,
        "complete": ir_measures.R,
        "precision": ir_measures.P,
        "hit": ir_measures.Success,
        "mrr": ir_measures.RR,
        "ndcg": ir_measures.nDCG,
        "judged": ir_measures.Judged,
    }[measure] @ k


def _collapse(ids: Sequence[str], doc_of: dict[str, str] | None) -> list[str]:
    """Chunk ranking → document ranking by first occurrence, written independently."""
    seen: set[str] = set()
    out = []
    for item in ids:
        doc = doc_of.get(item, item) if doc_of else item
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def _oracle_run(rankings: Rankings, doc_of: dict[str, str] | None) -> dict[str, dict[str, float]]:
    run = {}
    for query_id, ids in rankings.items():
        docs = _collapse(ids, doc_of)
        if docs:  # trec_eval has no notion of a query with an empty ranking
            run[query_id] = {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
    return run


def _ir_measures_values(
    judgments: Judgments, run: dict[str, dict[str, float]], metrics: Sequence[Metric]
) -> dict[str, dict[str, float]]:
    """``{metric name: {query id: value}}`` from ir_measures; complete@k = (R@k == 1)."""
    qrels = [
        ir_measures.Qrel(q, d, grade) for q, docs in judgments.items() for d, grade in docs.items()
    ]
    scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()]
    wanted = {_oracle_measure(m.measure, m.k) for m in metrics}
    by_measure: dict[object, dict[str, float]] = {measure: {} for measure in wanted}
    for value in ir_measures.iter_calc(list(wanted), qrels, scored):
        by_measure[value.measure][value.query_id] = float(value.value)
    out = {}
    for metric in metrics:
        column = by_measure[_oracle_measure(metric.measure, metric.k)]
        if metric.measure == "complete":
            column = {q: float(v == 1.0) for q, v in column.items()}
        out[format_metric(metric)] = column
    return out


def _pytrec_values(
    judgments: Judgments, run: dict[str, dict[str, float]], ks: Sequence[int]
) -> dict[str, dict[str, float]]:
    """recall, precision, success and ndcg straight from pytrec_eval (queries it returns)."""
    cut = ",".join(str(k) for k in ks)
    names = {"recall": "recall", "precision": "P", "hit": "success", "ndcg": "ndcg_cut"}
    evaluator = pytrec_eval.RelevanceEvaluator(judgments, {f"{n}.{cut}" for n in names.values()})
    results = evaluator.evaluate(run)
    return {
        f"{ours}@{k}": {q: values[f"{theirs}_{k}"] for q, values in results.items()}
        for ours, theirs in names.items()
        for k in ks
    }


def _ours(
    query_ids: Sequence[str],
    rankings: Rankings,
    judgments: Judgments,
    metrics: Sequence[Metric],
    doc_of: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    hit_q = [q for q in query_ids for _ in rankings.get(q, [])]
    hit_ids = [doc_of.get(i, i) if doc_of else i for q in query_ids for i in rankings.get(q, [])]
    rows = [(q, d, grade) for q, docs in judgments.items() for d, grade in docs.items()]
    return evaluate(query_ids, hit_q, hit_ids, Qrels.from_rows(rows), metrics)


def _max_diff(
    query_ids: Sequence[str],
    ours: dict[str, np.ndarray],
    oracle: dict[str, dict[str, float]],
    compare: Sequence[str],
    empty: Sequence[str] = (),
) -> dict[str, float]:
    """Largest |ours - oracle| per metric over the ``compare`` queries (0 if absent there).

    ``judged@k`` skips the ``empty`` queries (no hits), where ours is NaN by definition.
    """
    position = {q: i for i, q in enumerate(query_ids)}
    diffs = {}
    for name, column in oracle.items():
        skip = set(empty) if name.startswith("judged@") else set()
        queries = [q for q in compare if q not in skip]
        mine = np.array([ours[name][position[q]] for q in queries])
        theirs = np.array([column.get(q, 0.0) for q in queries])
        assert not np.isnan(mine).any(), f"{name}: NaN for a query with relevant documents"
        diffs[name] = float(np.max(np.abs(mine - theirs), initial=0.0))
        if skip:
            assert np.isnan([ours[name][position[q]] for q in skip]).all(), name
    return diffs


def _assert_close(diffs: dict[str, float]) -> None:
    worst = max(diffs, key=lambda name: diffs[name])
    assert diffs[worst] <= TOLERANCE, f"largest difference {diffs[worst]:.3g} in {worst}: {diffs}"


# a real run -------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["scifact", "nfcorpus"])
def beir_run(request, tmp_path_factory):
    """BM25 (embedded backend, BM25 only) over a BEIR test split: a few seconds per dataset."""
    from auditor.backends.embedded import EmbeddedBackend
    from auditor.corpus_reader import read_corpus
    from auditor.judgments import read_qrels
    from auditor.logs import read_log
    from auditor.records import LogRecord

    folder = DATA / request.param
    if not (folder / "qrels" / "test.tsv").is_file():
        pytest.skip(f"{folder} is absent: the BEIR test data lives in ../shared/data")
    judgments: Judgments = {}
    for qrel in read_qrels(folder / "qrels" / "test.tsv"):
        assert not hasattr(qrel, "reason"), qrel
        judgments.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.grade
    records = [r for r in read_log(folder) if isinstance(r, LogRecord) and r.query_id in judgments]
    assert len(records) == len(judgments)
    index = EmbeddedBackend.build(
        read_corpus(folder), tmp_path_factory.mktemp(request.param), encoder=None
    )
    rankings: Rankings = {}
    for start in range(0, len(records), 128):
        batch = records[start : start + 128]
        results = index.search_many([r.query for r in batch], "bm25", DEPTH)
        for record, result in zip(batch, results, strict=True):
            assert result.error is None
            rankings[record.query_id] = [hit.doc_id for hit in result.hits]
    return [r.query_id for r in records], rankings, judgments


@pytest.mark.data
def test_every_metric_matches_ir_measures_on_a_real_bm25_run(beir_run):
    query_ids, rankings, judgments = beir_run
    metrics = metrics_for(KS)
    ours = _ours(query_ids, rankings, judgments, metrics)
    oracle = _ir_measures_values(judgments, _oracle_run(rankings, None), metrics)
    compare = [q for q in query_ids if any(g >= 1 for g in judgments[q].values())]
    assert len(compare) == len(query_ids)  # every BEIR test query has a relevant document
    empty = [q for q in query_ids if not rankings[q]]  # every query term a stopword or unknown
    diffs = _max_diff(query_ids, ours, oracle, compare, empty)
    assert set(diffs) == {format_metric(m) for m in metrics}
    _assert_close(diffs)
    # the run is not degenerate: BM25 finds something for most queries
    assert np.nanmean(ours["recall@100"]) > 0.2


@pytest.mark.data
def test_real_run_matches_pytrec_eval_directly(beir_run):
    query_ids, rankings, judgments = beir_run
    metrics = metrics_for(KS, ("recall", "precision", "hit", "ndcg"))
    ours = _ours(query_ids, rankings, judgments, metrics)
    oracle = _pytrec_values(judgments, _oracle_run(rankings, None), KS)
    _assert_close(_max_diff(query_ids, ours, oracle, query_ids))


# a synthetic run with every awkward case ---------------------------------------------------
def _synthetic(seed: int = 7):
    """Chunk rankings over a small corpus, with graded judgments and every edge case:

    grades 0/1/2 (and ties among them), several chunks of one document in one ranking
    (collapse to first occurrence), tied scores in the source ranking, queries without
    judgments, queries judged only non-relevant, queries with zero hits, and rankings
    shorter than k.
    """
    rng = np.random.default_rng(seed)
    docs = [f"doc{i:03d}" for i in range(60)]
    doc_of = {f"{d}#{c}": d for d in docs for c in range(3)}
    chunks = sorted(doc_of)
    query_ids = [f"q{i:03d}" for i in range(120)]
    judgments: Judgments = {}
    rankings: Rankings = {}
    for i, query_id in enumerate(query_ids):
        kind = i % 10
        if kind != 0:  # kind 0: no judgments at all
            judged = rng.choice(docs, size=int(rng.integers(1, 12)), replace=False)
            grades = rng.integers(0, 3, size=len(judged))
            if kind == 1:
                grades[:] = 0  # judged, but nothing relevant
            judgments[query_id] = {str(d): int(g) for d, g in zip(judged, grades, strict=True)}
        if kind == 2:
            rankings[query_id] = []  # zero hits
            continue
        length = int(rng.integers(1, 8)) if kind == 3 else int(rng.integers(20, 150))
        picked = rng.choice(chunks, size=min(length, len(chunks)), replace=False).tolist()
        if query_id in judgments and kind != 3:  # plant relevant chunks, some twice per doc
            for d in list(judgments[query_id])[:4]:
                picked.insert(int(rng.integers(0, 15)), f"{d}#{int(rng.integers(0, 3))}")
        rankings[query_id] = picked
    return query_ids, rankings, judgments, doc_of


def test_synthetic_edge_cases_match_ir_measures_and_pytrec_eval():
    query_ids, rankings, judgments, doc_of = _synthetic()
    metrics = metrics_for(KS)
    ours = _ours(query_ids, rankings, judgments, metrics, doc_of)
    run = _oracle_run(rankings, doc_of)
    relevant = {q for q, docs in judgments.items() if any(g >= 1 for g in docs.values())}
    compare = [q for q in query_ids if q in relevant]
    empty = [q for q in compare if not rankings[q]]
    short = [q for q in compare if 0 < len(_collapse(rankings[q], doc_of)) < 100]
    collapsed = [q for q in compare if len(_collapse(rankings[q], doc_of)) < len(rankings[q])]
    assert empty and short and collapsed and len(compare) < len(query_ids)

    _assert_close(
        _max_diff(query_ids, ours, _ir_measures_values(judgments, run, metrics), compare, empty)
    )
    _assert_close(_max_diff(query_ids, ours, _pytrec_values(judgments, run, KS), compare))

    position = {q: i for i, q in enumerate(query_ids)}
    for name, column in ours.items():
        undefined = [column[position[q]] for q in query_ids if q not in relevant]
        assert np.isnan(undefined).all(), f"{name} must be NaN without relevant judgments"
    for k in KS:
        assert all(ours[f"recall@{k}"][position[q]] == 0.0 for q in empty)


def test_a_ranking_small_enough_to_check_by_hand():
    # q1 ranks d3 (grade 0), d2#0 (grade 1), x (unjudged), d2#1 (a second chunk of d2),
    # d1 (grade 2). At doc level: d3, d2, x, d1.
    judgments = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d9": 0}}
    rankings = {"q1": ["d3", "d2#0", "x", "d2#1", "d1"], "q2": ["d9"], "q3": []}
    doc_of = {"d2#0": "d2", "d2#1": "d2"}
    values = _ours(["q1", "q2", "q3"], rankings, judgments, metrics_for([1, 2, 4]), doc_of)
    dcg4 = 1 / np.log2(3) + 2 / np.log2(5)
    idcg = 2 + 1 / np.log2(3)
    expected = {
        "recall@2": 0.5,
        "recall@4": 1.0,
        "precision@4": 0.5,
        "hit@1": 0.0,
        "hit@2": 1.0,
        "mrr@1": 0.0,
        "mrr@4": 0.5,
        "ndcg@1": 0.0,
        "ndcg@4": dcg4 / idcg,
        "judged@4": 0.75,
        "complete@2": 0.0,
        "complete@4": 1.0,
    }
    for name, value in expected.items():
        assert values[name][0] == pytest.approx(value, abs=1e-12), name
    for column in values.values():
        assert np.isnan(column[1:]).all()  # q2: judged but nothing relevant; q3: unjudged


# metric names --------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("k", [1, 5, 10, 100, 1000])
def test_metric_names_round_trip(measure, k):
    name = f"{measure}@{k}"
    assert format_metric(parse_metric(name)) == name
    assert parse_metric(format_metric(Metric(measure, k))) == Metric(measure, k)
    assert str(parse_metric(name)) == name


@pytest.mark.parametrize(
    "bad",
    [
        "recal@10",
        "ndcg@0",
        "ndcg@-1",
        "ndcg@",
        "ndcg",
        "@10",
        "map@10",
        "ndcg@10.5",
        "ndcg@01",
        "ndcg @10",
        "recall@10@5",
        "",
    ],
)
def test_bad_metric_names_raise(bad):
    with pytest.raises(MetricNameError, match="unknown metric"):
        parse_metric(bad)


def test_dictionary_encoded_ids_give_identical_values() -> None:
    """Ids as DuckDB/Parquet hand them out (dictionary-encoded), even with a repeated
    dictionary value, score exactly as plain strings do."""
    import pyarrow as pa

    query_ids = ["q1", "q2", "q3"]
    hit_q = ["q1", "q1", "q1", "q2", "q2", "q3"]
    plain = ["d1", "d2", "d1", "d3", "d9", "d4"]
    dictionary = pa.array(["d1", "d2", "d3", "d9", "d4", "d1"])  # "d1" twice on purpose
    encoded = pa.DictionaryArray.from_arrays(pa.array([0, 1, 5, 2, 3, 4], pa.int32()),
                                             dictionary)
    qrels = Qrels.from_rows([("q1", "d1", 1), ("q1", "d2", 2), ("q2", "d9", 1),
                             ("q3", "d7", 1)])
    metrics = metrics_for([1, 2, 10])
    expected = evaluate(query_ids, hit_q, plain, qrels, metrics)
    got = evaluate(query_ids, hit_q, encoded, qrels, metrics)
    for name in expected:
        assert np.array_equal(expected[name], got[name], equal_nan=True), name


def test_hits_out_of_query_order_are_refused() -> None:
    with pytest.raises(ValueError, match="grouped by query"):
        evaluate(["a", "b"], ["b", "b", "a"], ["d2", "y", "x"], Qrels.from_rows([]),
                 metrics_for([1]))
