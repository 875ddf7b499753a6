"""``auditor judgments`` and ``auditor rescore`` on a real run of the SciFact fixtures: the
run names the list version it used, import → export gives the qrels file back byte for
byte, and a rescoring against another version agrees with judged@k and recall@k counted
by hand from the stored hits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.store import Store
from tests.conftest import FIXTURES

from .test_audit import auditor, write_config

QRELS = FIXTURES / "scifact" / "qrels.tsv"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("judging")
    write_config(directory)
    assert auditor("index", "build", cwd=directory).returncode == 0
    done = auditor("run", cwd=directory)
    assert done.returncode == 0, done.stderr
    return directory, Store(directory / "audit.duckdb").runs()[0]["run_id"]


def test_the_run_records_the_list_version_it_used(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    store = Store(directory / "audit.duckdb")
    used = store.run(run_id)["manifest"]["judgments"]
    assert (used["list"], used["version"]) == ("qrels", 1)
    assert store.list_version("qrels", 1).digest == used["digest"]
    listed = auditor("judgments", "list", "--json", cwd=directory)
    assert [v["spec"] for v in json.loads(listed.stdout)] == ["qrels@1"], listed.stderr


def test_import_export_round_trip_through_the_cli(audited: tuple[Path, str]) -> None:
    directory, _ = audited
    imported = auditor("judgments", "import", str(QRELS), cwd=directory)
    assert imported.returncode == 0, imported.stderr
    assert "unchanged: qrels@1" in imported.stdout  # the run already stored these labels
    assert "round-trips the file byte for byte" in imported.stdout
    exported = auditor("judgments", "export", "qrels@1", "back.tsv", cwd=directory)
    assert exported.returncode == 0, exported.stderr
    assert (directory / "back.tsv").read_bytes() == QRELS.read_bytes()


def _by_hand(store: Store, run_id: str, qrels: dict[str, dict[str, int]], k: int
             ) -> tuple[float, float]:
    """Mean judged@k and recall@k over the run's answered queries that have a relevant
    judgment (others have no value, as in trec_eval), plainly."""
    ranking = store.run_ranking(run_id)
    hits: dict[int, list[str]] = {}
    for seq, doc in zip(ranking.hits.column("seq").to_pylist(),
                        ranking.hits.column("id").to_pylist(), strict=True):
        if doc not in hits.setdefault(seq, []):
            hits[seq].append(doc)
    judged, recall = [], []
    for seq, query_id in zip(ranking.queries.column("seq").to_pylist(),
                             ranking.queries.column("query_id").to_pylist(), strict=True):
        top = hits.get(seq, [])[:k]
        grades = qrels.get(query_id, {})
        relevant = {d for d, g in grades.items() if g >= 1}
        if relevant and top:
            judged.append(sum(d in grades for d in top) / len(top))
        if relevant:
            recall.append(len(relevant & set(top)) / len(relevant))
    return sum(judged) / len(judged), sum(recall) / len(recall)


def test_rescore_against_another_version(audited: tuple[Path, str]) -> None:
    directory, run_id = audited
    store = Store(directory / "audit.duckdb")
    lines = QRELS.read_text().splitlines()
    half = [lines[0]] + lines[1::2]  # every other judgment, one regraded to 0
    half[1] = half[1].rsplit("\t", 1)[0] + "\t0"
    (directory / "half.tsv").write_text("\n".join(half) + "\n")
    assert auditor("judgments", "import", "half.tsv", "--name", "qrels",
                   cwd=directory).returncode == 0
    done = auditor("rescore", run_id, "--judgments", "qrels@2", "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    values = {m["metric"]: m for m in result["metrics"]}
    qrels: dict[str, dict[str, int]] = {}
    for line in half[1:]:
        query_id, doc_id, grade = line.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(grade)
    judged, recall = _by_hand(store, run_id, qrels, 10)
    assert values["judged@10"]["rescored"] == pytest.approx(judged)
    assert values["recall@10"]["rescored"] == pytest.approx(recall)
    assert values["judged@10"]["delta"] < 0  # fewer judgments, fewer judged hits
    assert result["judgments"] == "qrels@2" and result["queries"] == 50
    assert result["judged_queries"] == len(qrels)
    # against the run's own list nothing changes, and every rescoring is kept
    same = json.loads(auditor("rescore", run_id, "--judgments", "qrels@1", "--json",
                              cwd=directory).stdout)
    assert all(m["delta"] == 0 for m in same["metrics"]), same["metrics"]
    assert [(r.rescore_id, r.list_name, r.version) for r in store.rescorings(run_id)] == [
        (1, "qrels", 2), (2, "qrels", 1)]
    assert store.rescore_means(run_id, 1)["judged@10"][0] == pytest.approx(judged)
    assert store.run(run_id)["manifest"]["judgments"]["version"] == 1  # the run is unchanged


def test_diff_between_versions(audited: tuple[Path, str]) -> None:
    directory, _ = audited
    shown = auditor("judgments", "diff", "qrels@1", "qrels@2", "--json", cwd=directory)
    if shown.returncode == 2 and "no version 2" in shown.stderr:
        pytest.skip("runs after test_rescore_against_another_version")
    found = json.loads(shown.stdout)
    total = len(QRELS.read_text().splitlines()) - 1
    assert len(found["removed"]) + len(found["changed"]) + found["same"] == total
    assert len(found["changed"]) == 1 and found["changed"][0]["grade"] == 0
    assert not found["added"]


def test_cited_ids_become_their_own_label_source(audited: tuple[Path, str]) -> None:
    """Cited 1, shown but not cited 0, never shown: no label (unjudged)."""
    directory, run_id = audited
    done = auditor("judgments", "cited", run_id, "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected: dict[tuple[str, str], int] = {}
    for line in (FIXTURES / "scifact" / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("cited") is None:
            continue
        shown = [item["id"] for item in record.get("retrieved") or record.get("served") or []]
        for doc in shown:
            expected[(record["query_id"], doc)] = 0
        for doc in record["cited"]:
            expected[(record["query_id"], doc)] = 1
    store = Store(directory / "audit.duckdb")
    labels = store.list_labels("cited", 1).to_pylist()
    assert {(r["query_id"], r["doc_id"]): r["grade"] for r in labels} == expected
    assert {r["source"] for r in labels} == {"cited"} and all(r["query_hash"] for r in labels)
    assert result["cited"] == sum(expected.values())
    assert result["shown"] == len(expected) - result["cited"]


def test_agreement_of_two_raters(tmp_path: Path) -> None:
    for rater, grades in (("alice", "2 0 1 3 1"), ("bob", "2 1 1 0 1")):
        lines = [f"q{i} 0 d{i} {g}" for i, g in enumerate(grades.split())]
        (tmp_path / f"{rater}.trec").write_text("\n".join(lines) + "\n")
        imported = auditor("judgments", "import", f"{rater}.trec", "--name", "pool",
                           "--source", f"human:{rater}", "--merge", "--store", "s.duckdb",
                           cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
    done = auditor("judgments", "agreement", "pool", "--json", "--store", "s.duckdb",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["raters"] == ["human:alice", "human:bob"] and found["items"] == 5
    assert [(p["query_id"], p["grades"]) for p in found["disagreements"]] == [
        ("q3", {"human:alice": 3, "human:bob": 0}), ("q1", {"human:alice": 0, "human:bob": 1})]
    shown = auditor("judgments", "agreement", "pool", "--store", "s.duckdb", cwd=tmp_path)
    assert "Cohen's κ" in shown.stdout and "Krippendorff's α" in shown.stdout


def test_reattach_after_a_rebuild_with_other_chunk_words(tmp_path: Path) -> None:
    from auditor.corpus_reader import read_corpus

    corpus = FIXTURES / "scifact" / "corpus.jsonl"
    write_config(tmp_path, chunk_words=25)  # the rebuilt index
    judged = [c for c in read_corpus(corpus, 60)][:30]
    (tmp_path / "chunks.trec").write_text("".join(f"q{i} 0 {c.chunk_id} 1\n"
                                                  for i, c in enumerate(judged)))
    assert auditor("judgments", "import", "chunks.trec", cwd=tmp_path).returncode == 0
    done = auditor("judgments", "reattach", "chunks", "--old-chunk-words", "60", "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    counts = found["counts"]
    assert found["to"] == "chunks@2" and counts["labels"] == 30 and counts["kept"] == 0
    assert counts["exact"] + counts["overlap"] + counts["unattached"] == 30
    assert counts["unattached"] == len(found["unattached"]) == 0
