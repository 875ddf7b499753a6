"""Weak judges against people on a store built by hand: four runs rank the one relevant
document of q1 (d1, by people) at ranks 1-4 and d4 at ranks 4-1, so people order the runs
r1 > r2 > r3 > r4 by nDCG@10. A silver source that also calls d1 relevant orders them the
same way (τ = 1); a `cited` source that calls d4 relevant instead orders them backwards
(τ = -1). κ is checked against scikit-learn's ``cohen_kappa_score``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from sklearn.metrics import cohen_kappa_score

from auditor.errors import InputError
from auditor.store import Store
from auditor.weak_judges import RunScore, kendall, weak_judges
from tests.handmade import add_run, empty_store, labels
from tests.integration.test_audit import auditor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RANKINGS = {"r1": ["d1", "d2", "d3", "d4"], "r2": ["d2", "d1", "d4", "d3"],  # d1 down,
            "r3": ["d3", "d4", "d1", "d2"], "r4": ["d4", "d3", "d2", "d1"]}  # d4 up
PEOPLE = [("q1", "d1", 3, "imported:q.tsv"), ("q1", "d2", 0, "imported:q.tsv"),
          ("q1", "d3", 0, "human:ann"), ("q1", "d4", 0, "imported:q.tsv")]
SILVER = [("q1", "d1", 1, "silver")]
CITED = [("q1", "d1", 0, "cited"), ("q1", "d3", 0, "cited"), ("q1", "d4", 1, "cited")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = empty_store(Store(tmp_path / "audit.duckdb"))
    with duckdb.connect(str(store.path)) as con:
        for hours, (run_id, ranked) in enumerate(RANKINGS.items()):
            add_run(con, run_id, mode="bm25", log="log.jsonl", queries=("q1",),
                    started=T0 + timedelta(hours=hours), hits={"q1": ranked})
        add_run(con, "chunks", mode="bm25", log="log.jsonl", queries=("q1",), level="chunk",
                started=T0 + timedelta(hours=9), hits={"q1": ["d1"]})  # ids never judged
    for name, rows in (("qrels", PEOPLE + SILVER), ("cited", CITED)):
        store.add_list_version(name, labels(rows, T0), origin="test", note=None, layout={},
                               digest=name)
    return store


def test_weak_sources_rank_the_runs_like_people_or_not(store: Store) -> None:
    report = weak_judges(store, "qrels", ("cited",))
    assert report.people == "qrels@1" and report.metric == "ndcg@10"
    assert report.people_sources == ("human:ann", "imported:q.tsv")
    judges = {judge.source: judge for judge in report.judges}
    assert list(judges) == ["silver", "cited"]
    silver, cited = judges["silver"], judges["cited"]
    assert silver.judgments == "qrels@1" and cited.judgments == "cited@1"
    people = {run.run_id: run.people for run in silver.runs}
    assert people["r1"] == pytest.approx(1.0)
    assert people["r2"] == pytest.approx(1 / math.log2(3))
    assert "chunks" not in people  # a chunk-level run: document labels do not judge it
    assert silver.tau == pytest.approx(1.0) and silver.ranked_runs == 4
    assert cited.tau == pytest.approx(-1.0) and cited.ranked_runs == 4
    assert cited.p_value is not None and silver.reason is None
    # κ over the pairs both judged, relevant or not: people (1, 0, 0) vs cited (0, 0, 1)
    assert cited.overlap == 3 and cited.pairs == 3
    assert cited.kappa == pytest.approx(cohen_kappa_score([1, 0, 0], [0, 0, 1]))
    assert cited.kappa_linear == pytest.approx(
        cohen_kappa_score([3, 0, 0], [0, 0, 1], weights="linear", labels=[0, 1, 2, 3]))
    assert silver.overlap == 1 and silver.kappa is None  # one pair: chance agreement total


def test_tau_is_not_evaluated_without_two_ordered_runs() -> None:
    one = [RunScore("a", "bm25", 0.5, 0.4), RunScore("b", "bm25", None, 0.3)]
    assert kendall(one)[0] is None and "needs two or more" in kendall(one)[3]
    tied = [RunScore("a", "bm25", 0.5, 0.4), RunScore("b", "bm25", 0.6, 0.4)]
    assert kendall(tied)[0] is None and "tied" in kendall(tied)[3]


def test_a_list_without_people_or_without_weak_labels_is_refused(store: Store) -> None:
    with pytest.raises(InputError, match="no human or imported label"):
        weak_judges(store, "cited")
    store.add_list_version("people", labels(PEOPLE, T0), origin="test", note=None, layout={},
                           digest="p")
    with pytest.raises(InputError, match="no automatic label source"):
        weak_judges(store, "people")


def test_cli_and_rescore_note(store: Store) -> None:
    done = auditor("judgments", "weak", "qrels", "--weak", "cited", "--store",
                   str(store.path), "--json", cwd=store.path.parent)
    assert done.returncode == 0, done.stderr
    taus = {j["source"]: j["tau"] for j in json.loads(done.stdout)["judges"]}
    assert taus == pytest.approx({"silver": 1.0, "cited": -1.0})
    with duckdb.connect(str(store.path)) as con:
        con.execute("UPDATE runs SET manifest = ? WHERE run_id = 'r1'",
                    [json.dumps({"judgments": {"list": "qrels", "version": 1}})])
    done = auditor("rescore", "r1", "--judgments", "cited@1", "--store", str(store.path),
                   cwd=store.path.parent)
    assert done.returncode == 0, done.stderr
    assert "cited is an automatic source: against qrels@1" in done.stdout
    assert "τ -1.000 over 4 runs" in done.stdout
    with duckdb.connect(str(store.path)) as con:  # a recorded list version that is gone
        con.execute("UPDATE runs SET manifest = ? WHERE run_id = 'r2'",
                    [json.dumps({"judgments": {"list": "qrels", "version": 9}})])
    done = auditor("rescore", "r2", "--judgments", "cited@1", "--store", str(store.path),
                   cwd=store.path.parent)
    assert done.returncode == 0, done.stderr
    assert "not measured against people: judgment list 'qrels' has no version 9" in " ".join(
        done.stdout.split())
