"""Judgment lists as versioned objects: qrels in and out byte for byte, versions that are
reused when nothing changed, several raters' labels and their effective grade, diffs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.judging import (
    Selection,
    combine,
    diff,
    effective,
    export_list,
    import_qrels,
    parse_spec,
)
from auditor.store import Store, StoreError
from tests.conftest import FIXTURES

TREC = "q1\tQ0\td1\t2\nq1\tQ0\td2\t0\nq2\tQ0\td1\t1\nq10\tQ0\td3\t3\n"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.duckdb")


@pytest.mark.parametrize("name,text", [
    ("beir.tsv", (FIXTURES / "scifact" / "qrels.tsv").read_text()),
    ("tabs.trec", TREC),
    ("spaces.trec", TREC.replace("\t", " ").replace("Q0", "0")),
])
def test_import_then_export_gives_the_same_bytes(store: Store, tmp_path: Path, name: str,
                                                  text: str) -> None:
    source = tmp_path / name
    source.write_bytes(text.encode())
    done = import_qrels(store, source, name="l")
    assert done.created and done.round_trips and done.first_difference is None
    out = tmp_path / "out" / name
    version, lines = export_list(store, "l@1", out)
    assert out.read_bytes() == source.read_bytes()
    assert lines == done.labels == version.labels


def test_the_same_labels_again_make_no_new_version(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "q.trec"
    source.write_text(TREC)
    assert import_qrels(store, source).version.spec == "q@1"
    again = import_qrels(store, source)
    assert not again.created and again.version.spec == "q@1"
    source.write_text(TREC.replace("d2\t0", "d2\t1"))
    assert import_qrels(store, source).version.spec == "q@2"
    assert [v.spec for v in store.list_versions("q")] == ["q@1", "q@2"]


def test_a_file_not_in_canonical_form_says_where_export_differs(store: Store,
                                                                 tmp_path: Path) -> None:
    source = tmp_path / "odd.trec"
    source.write_text("q1 0 d1 1\nq1 0 d2 1.0\nq1 0 d1 2\n\nq2 0 d9 x\n")
    done = import_qrels(store, source)
    assert done.repeated == 1 and len(done.quarantined) == 1
    assert done.quarantined[0].line == 5 and done.quarantined[0].field == "grade"
    assert not done.round_trips and done.first_difference == 1  # d1 takes its last grade
    out = tmp_path / "out.trec"
    export_list(store, "odd", out)
    assert out.read_text() == "q1 0 d1 2\nq1 0 d2 1\n"  # first position, last grade


def test_raters_merge_and_the_effective_grade_follows_the_policy(store: Store,
                                                                  tmp_path: Path) -> None:
    for rater, text in (("alice", "q1 0 d1 2\nq1 0 d2 0\n"), ("bob", "q1 0 d1 1\nq2 0 d5 1\n"),
                        ("carol", "q1 0 d1 1\n")):
        path = tmp_path / f"{rater}.trec"
        path.write_text(text)
        import_qrels(store, path, name="pool", source=f"human:{rater}", merge=True)
    cited = tmp_path / "cited.trec"
    cited.write_text("q1 0 d2 1\nq3 0 d7 1\n")
    import_qrels(store, cited, name="pool", source="cited", merge=True)
    version = store.list_version("pool")
    assert version.version == 4 and set(version.sources) == {
        "human:alice", "human:bob", "human:carol", "cited"}
    labels = store.list_labels("pool", 4)

    def grades(selection: Selection) -> dict[tuple[str, str], int]:
        return {(p.query_id, p.doc_id): p.grade for p in effective(labels, selection)}

    assert grades(Selection()) == {("q1", "d1"): 1, ("q1", "d2"): 0, ("q2", "d5"): 1}
    assert grades(Selection(policy="mean")) == {("q1", "d1"): 1, ("q1", "d2"): 0,
                                                 ("q2", "d5"): 1}
    assert grades(Selection(policy="rater:alice")) == {("q1", "d1"): 2, ("q1", "d2"): 0}
    assert grades(Selection("cited")) == {("q1", "d2"): 1, ("q3", "d7"): 1}
    assert grades(Selection("all"))[("q1", "d2")] == 0  # alice 0, cited 1: tie -> lower
    # a rater's second file replaces that rater's labels only
    again = tmp_path / "alice.trec"
    again.write_text("q1 0 d1 3\n")
    import_qrels(store, again, name="pool", source="human:alice", merge=True)
    assert grades(Selection(policy="rater:alice")) != {}  # labels of v4 are unchanged
    assert {(p.query_id, p.doc_id): p.grade for p in effective(
        store.list_labels("pool", 5), Selection(policy="rater:alice"))} == {("q1", "d1"): 3}


def test_combine_rules() -> None:
    assert combine([1, 2], "majority") == 1 and combine([2, 2, 0], "majority") == 2
    assert combine([1, 2], "mean") == 2 and combine([0, 1, 1], "mean") == 1
    assert combine([0, 0, 1], "mean") == 0


def test_diff_names_added_removed_and_regraded_pairs(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.trec"
    path.write_text("q1 0 a 1\nq1 0 b 1\nq2 0 c 0\n")
    import_qrels(store, path)
    path.write_text("q1 0 a 1\nq2 0 c 2\nq3 0 e 1\n")
    import_qrels(store, path)
    found = diff(store, "d@1", "d@2")
    assert [(p.query_id, p.doc_id) for p in found.added] == [("q3", "e")]
    assert [(p.query_id, p.doc_id) for p in found.removed] == [("q1", "b")]
    assert [(a.grade, b.grade) for a, b in found.changed] == [(0, 2)]
    assert found.same == 1


@pytest.mark.parametrize("spec,expected", [("qrels", ("qrels", None)),
                                           ("qrels@latest", ("qrels", None)),
                                           ("a@b@3", ("a@b", 3))])
def test_specs(spec: str, expected: tuple) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["@3", "qrels@0", "qrels@x"])
def test_bad_specs_are_one_sentence(spec: str) -> None:
    with pytest.raises(InputError, match="judgment list"):
        parse_spec(spec)


def test_missing_lists_and_versions_name_what_exists(store: Store, tmp_path: Path) -> None:
    with store.connect():  # an empty store
        pass
    with pytest.raises(StoreError, match="judgments import"):
        store.list_version("nothing")
    path = tmp_path / "x.trec"
    path.write_text(TREC)
    import_qrels(store, path)
    with pytest.raises(StoreError, match=r"lists: x"):
        store.list_version("nothing")
    with pytest.raises(StoreError, match=r"no version 4 \(versions 1..1\)"):
        store.list_version("x", 4)


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(InputError, match="majority, mean or rater:NAME"):
        Selection(policy="median")


def test_a_grade_added_makes_a_version_holding_the_list_and_the_grade(store: Store,
                                                                      tmp_path: Path) -> None:
    """The judging page's write: the latest labels copied, the new one after them."""
    import pyarrow as pa

    from auditor.store.judgment_lists import LABEL_SCHEMA

    path = tmp_path / "q.trec"
    path.write_text(TREC)
    import_qrels(store, path)
    row = {"position": 0, "query_id": "q2", "query_hash": None, "doc_id": "d9",
           "chunk_id": None, "text_hash": None, "grade": 3, "source": "human:ann",
           "labeled_at": datetime.now(UTC), "note": None, "iteration": None}
    assert store.add_labels("q", pa.Table.from_pylist([row], schema=LABEL_SCHEMA),
                            origin="test") == 2
    labels = store.list_labels("q", 2).to_pylist()
    assert [(r["query_id"], r["doc_id"], r["position"]) for r in labels][-1] == ("q2", "d9", 4)
    assert [r["doc_id"] for r in labels[:4]] == [r["doc_id"] for r in
                                                 store.list_labels("q", 1).to_pylist()]
    assert store.list_version("q").digest != store.list_version("q", 1).digest
    assert store.add_labels("new", pa.Table.from_pylist([row], schema=LABEL_SCHEMA),
                            origin="test") == 1  # a grade can start a list


def test_a_judging_session_appends_to_its_own_version_until_something_else_happens(
        store: Store, tmp_path: Path) -> None:
    """Grades of one session go into the version it opened; another origin, a newer
    version or a rescoring naming it make the next grade open a new version."""
    import pyarrow as pa

    from auditor.store.judgment_lists import LABEL_SCHEMA

    path = tmp_path / "q.trec"
    path.write_text(TREC)
    import_qrels(store, path)

    def grade(doc: str, origin: str, session: int | None) -> int:
        row = {"position": 0, "query_id": "q2", "query_hash": None, "doc_id": doc,
               "chunk_id": None, "text_hash": None, "grade": 1, "source": "human:ann",
               "labeled_at": datetime.now(UTC), "note": None, "iteration": None}
        return store.add_labels("q", pa.Table.from_pylist([row], schema=LABEL_SCHEMA),
                                origin=origin, session=session)

    assert grade("d7", "session a", None) == 2
    digest = store.list_version("q", 2).digest
    assert grade("d8", "session a", 2) == 2  # appended
    assert store.list_version("q", 2).digest != digest
    assert [r["doc_id"] for r in store.list_labels("q", 2).to_pylist()][-2:] == ["d7", "d8"]
    assert [r["position"] for r in store.list_labels("q", 2).to_pylist()] == list(range(6))
    assert grade("d9", "session b", 2) == 3  # another session's origin
    assert grade("d10", "session a", 2) == 3 + 1  # its version is no longer the latest
    assert store.list_version("q", 4).labels == 4 + 4
    store.record_rescoring("r1", "q", 4, {}, pa.table({
        "query_id": pa.array([], pa.string()), "metric": pa.array([], pa.string()),
        "value": pa.array([], pa.float64())}))
    assert grade("d11", "session a", 4) == 5  # something was measured against version 4
    assert store.list_version("q", 4).labels == 8
