"""Labels on chunks of the SciFact fixture survive a rebuild with ``chunk_words`` changed;
the re-attachment report's counts add up and nothing is mapped silently."""

from __future__ import annotations

import pytest

from auditor.corpus_reader import read_corpus
from auditor.reattach import ChunkLabel, reattach
from tests.conftest import FIXTURES

CORPUS = FIXTURES / "scifact" / "corpus.jsonl"


def _labels(chunk_words: int) -> list[ChunkLabel]:
    qrels = [line.split("\t") for line in (FIXTURES / "scifact" / "qrels.tsv").read_text()
             .splitlines()[1:]]
    judged = {doc: (query, int(grade)) for query, doc, grade in qrels}
    return [ChunkLabel(judged[c.doc_id][0], c.chunk_id, c.doc_id, judged[c.doc_id][1], c.text)
            for c in read_corpus(CORPUS, chunk_words) if c.doc_id in judged]


@pytest.mark.parametrize("old,new", [(60, 60), (60, 25), (25, 120), (60, 0)])
def test_labels_survive_a_rebuild_with_other_chunk_words(old: int, new: int) -> None:
    labels = _labels(old)
    chunks = list(read_corpus(CORPUS, new))
    done = reattach(labels, chunks)
    counts = done.counts
    assert counts["labels"] == len(labels) == counts["exact"] + counts["overlap"] + counts[
        "unattached"]
    assert counts["unattached"] == 0, done.unattached[:3]
    if old == new:
        assert counts["exact"] == len(labels)
    text = {c.chunk_id: c.text for c in chunks}
    for attached in done.attached:  # every new chunk holds part of the judged text
        assert attached.coverage >= 0.5
        assert all(c.startswith(attached.label.doc_id) for c in attached.chunk_ids)
        assert any(attached.label.text.split()[0] in text[c] for c in attached.chunk_ids)


def test_what_cannot_be_reattached_is_listed_with_its_reason() -> None:
    chunks = list(read_corpus(CORPUS, 60))
    doc = chunks[0].doc_id
    labels = [ChunkLabel("q", "gone#0", "not-a-doc", 1, "text"),
              ChunkLabel("q", f"{doc}#9", doc, 1, "words that were never in this document"),
              ChunkLabel("q", f"{doc}#0", doc, 2, chunks[0].text)]
    done = reattach(labels, chunks)
    assert done.counts == {"labels": 3, "exact": 1, "overlap": 0, "unattached": 2}
    assert [u.reason for u in done.unattached] == [
        "its document is not in the new index", "the judged text is not in the rebuilt document"]


def test_a_list_version_moves_to_the_rebuilt_chunks(tmp_path) -> None:
    from auditor.judging import import_qrels
    from auditor.reattach import reattach_list
    from auditor.store import Store

    labels = _labels(60)
    lines = [f"{label.query_id} 0 {label.chunk_id} {label.grade}" for label in labels]
    lines.append("1 0 some-document 1")  # a document label: re-chunking does not touch it
    (tmp_path / "chunks.trec").write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "s.duckdb")
    import_qrels(store, tmp_path / "chunks.trec", name="chunks")
    new = list(read_corpus(CORPUS, 25))
    done = reattach_list(store, "chunks@1", read_corpus(CORPUS, 60), new)
    counts = done.report.counts
    assert done.target == "chunks@2" and done.kept == 1
    assert counts["labels"] == len(labels) and counts["unattached"] == 0
    stored = store.list_labels("chunks", 2).to_pylist()
    ids = {c.chunk_id for c in new}
    moved = [r for r in stored if r["note"]]
    assert len(moved) == sum(len(a.chunk_ids) for a in done.report.attached)
    assert all(r["doc_id"] in ids and r["chunk_id"] == r["doc_id"] and r["text_hash"]
               for r in moved)
    assert [r["doc_id"] for r in stored if not r["note"]] == ["some-document"]
