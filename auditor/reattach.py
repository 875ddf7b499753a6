"""Labels that survive re-chunking: a label on a chunk of the old index is re-attached to
the chunk(s) of the rebuilt one that hold the judged text.

First by exact text (the hash of the judged text equals a new chunk's), then by character
overlap: the judged text is found in its document (the document's new chunks joined in
order, whitespace collapsed) and every new chunk whose span intersects it gets the label
when together they cover at least ``threshold`` of it. What cannot be re-attached is
listed with the reason, never dropped or mapped silently; the counts always add up
(``exact + overlap + unattached == labels``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from auditor.judging import digest, resolve, text_hash
from auditor.records import Chunk
from auditor.store import Store
from auditor.store.judgment_lists import LABEL_SCHEMA

THRESHOLD = 0.5  # of the judged text's characters the new chunks must cover
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ChunkLabel:
    """A grade given to a chunk, with the text that was judged."""

    query_id: str
    chunk_id: str
    doc_id: str
    grade: int
    text: str


@dataclass(frozen=True)
class Attached:
    label: ChunkLabel
    chunk_ids: tuple[str, ...]
    how: str  # exact | overlap
    coverage: float  # of the judged text covered by the new chunks


@dataclass(frozen=True)
class Unattached:
    label: ChunkLabel
    reason: str


@dataclass(frozen=True)
class Reattachment:
    attached: list[Attached] = field(default_factory=list)
    unattached: list[Unattached] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        exact = sum(a.how == "exact" for a in self.attached)
        return {"labels": len(self.attached) + len(self.unattached), "exact": exact,
                "overlap": len(self.attached) - exact, "unattached": len(self.unattached)}


def _flat(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def reattach(labels: Iterable[ChunkLabel], new_chunks: Iterable[Chunk],
             threshold: float = THRESHOLD) -> Reattachment:
    """Each label on the chunks of ``new_chunks`` (see the module docstring)."""
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    by_hash: dict[tuple[str, str], list[str]] = defaultdict(list)
    for chunk in new_chunks:
        by_doc[chunk.doc_id].append(chunk)
        by_hash[(chunk.doc_id, text_hash(_flat(chunk.text)))].append(chunk.chunk_id)
    spans = {doc: _spans(sorted(chunks, key=lambda c: c.position))
             for doc, chunks in by_doc.items()}
    result = Reattachment()
    for label in labels:
        judged = _flat(label.text)
        exact = by_hash.get((label.doc_id, text_hash(judged)))
        if exact:
            result.attached.append(Attached(label, tuple(exact), "exact", 1.0))
            continue
        if label.doc_id not in spans:
            result.unattached.append(Unattached(label, "its document is not in the new index"))
            continue
        document, chunk_spans = spans[label.doc_id]
        start = document.find(judged) if judged else -1
        if start < 0:
            result.unattached.append(Unattached(
                label, "the judged text is not in the rebuilt document"))
            continue
        end = start + len(judged)
        hits = [(cid, min(end, e) - max(start, s)) for cid, s, e in chunk_spans
                if min(end, e) > max(start, s)]
        coverage = sum(n for _, n in hits) / max(1, end - start)
        if coverage >= threshold:
            result.attached.append(Attached(label, tuple(c for c, _ in hits), "overlap",
                                            coverage))
        else:
            result.unattached.append(Unattached(
                label, f"the new chunks cover {coverage:.0%} of the judged text "
                       f"(< {threshold:.0%})"))
    return result


def _spans(chunks: list[Chunk]) -> tuple[str, list[tuple[str, int, int]]]:
    """A document's text from its chunks in order, and each chunk's character span in it."""
    parts: list[str] = []
    spans: list[tuple[str, int, int]] = []
    at = 0
    for chunk in chunks:
        text = _flat(chunk.text)
        spans.append((chunk.chunk_id, at, at + len(text)))
        parts.append(text)
        at += len(text) + 1
    return " ".join(parts), spans


@dataclass(frozen=True)
class ListReattachment:
    """``auditor judgments reattach``: a list version's chunk labels on a rebuilt index."""

    source: str  # NAME@VERSION read
    target: str  # NAME@VERSION written
    kept: int  # document-level labels, which re-chunking does not touch
    report: Reattachment


def reattach_list(store: Store, spec: str, old_chunks: Iterable[Chunk],
                  new_chunks: Iterable[Chunk], *, name: str | None = None,
                  threshold: float = THRESHOLD) -> ListReattachment:
    """Store the labels of ``spec`` with every chunk label moved to the new chunks as the
    next version of ``name`` (default: the same list). A label is a chunk label when its id
    is a chunk id of the old index that is not also a document id; each new chunk a label
    lands on gets a copy (noted ``reattached from <old id> (exact|overlap)``)."""
    version = resolve(store, spec)
    old = {c.chunk_id: c for c in old_chunks if c.chunk_id != c.doc_id}
    new = list(new_chunks)
    new_text = {c.chunk_id: c.text for c in new}
    rows = store.list_labels(version.name, version.version).to_pylist()
    doc_rows = [r for r in rows if (r["chunk_id"] or r["doc_id"]) not in old]
    chunk_rows = [r for r in rows if (r["chunk_id"] or r["doc_id"]) in old]
    labels = [ChunkLabel(r["query_id"], old[cid].chunk_id, old[cid].doc_id, r["grade"],
                         old[cid].text)
              for r in chunk_rows for cid in [r["chunk_id"] or r["doc_id"]]]
    report = reattach(labels, new, threshold)
    moved = []
    by_label = {id(a.label): a for a in report.attached}
    for row, label in zip(chunk_rows, labels, strict=True):
        found = by_label.get(id(label))
        for chunk_id in found.chunk_ids if found else ():
            moved.append({**row, "doc_id": chunk_id, "chunk_id": chunk_id,
                          "text_hash": text_hash(_flat(new_text[chunk_id])),
                          "note": f"reattached from {label.chunk_id} ({found.how})"})
    out = [{**r, "position": i} for i, r in enumerate(doc_rows + moved)]
    table = pa.Table.from_pylist(out, schema=LABEL_SCHEMA)
    target = name or version.name
    number = store.add_list_version(target, table, origin=f"reattached from {version.spec}",
                                    note=None, layout=version.layout, digest=digest(table))
    return ListReattachment(version.spec, f"{target}@{number}", len(doc_rows), report)
