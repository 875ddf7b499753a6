"""Trace answers to their sources, sentence by sentence, for a batch of replayed queries.

For every factual sentence of a logged answer we score support by three pools of chunks:
what production served, what replay returns now (top ``max(k)``), and the best candidates
anywhere in the index (a deep search with the sentence itself as the query, lexical and
dense). Everything the dashboard shows about an answer comes from the rows made here, so
nothing is recomputed at display time.

Sentence classes (``status``):

- ``supported``: a served chunk supports it (or, without a served list, a replayed one);
- ``retrievable_not_retrieved``: not supported by what was retrieved, but some chunk of the
  index supports it (its replayed rank, if any, is kept);
- ``contradicted``: no chunk of the index supports it, and a retrieved chunk (served or
  replayed) states a different number, date or name where the sentence states one
  (``auditor.anchors.find_conflict``): the answer's figure is not merely unsupported, the
  context it was given says otherwise ("the passage says 9,312, the answer says 9,984");
- ``ungrounded``: no chunk of the index supports it, not even two adjacent chunks joined.

Support anywhere in the index wins over a conflict: a correct figure whose chunk was not
retrieved, next to another town's figure that was, is a retrieval miss, not a contradiction.
Conflicts are kept (``SentenceTrace.conflicts``) on every sentence that is not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from auditor.anchors import conflict_matrix
from auditor.backends import Backend, BackendError
from auditor.cases import ConflictRef, SentenceStatus, SentenceSupport
from auditor.evidence import (
    PrunedPlan,
    SupportScorer,
    composite_support,
    plan_pruned,
    support_passage,
    supported,
)
from auditor.metrics.scatter import Cover, effective_sources, min_cover
from auditor.replay import Replayed
from auditor.sentences import is_factual, split_sentences

Origin = Literal["served", "replayed", "index"]
# classes whose sentence some chunk of the index supports (their best chunk is evidence)
GROUNDED: tuple[SentenceStatus, ...] = ("supported", "retrievable_not_retrieved")
EVIDENCE_DEPTH = 20  # deep-search hits per sentence and per lexical/dense mode


@dataclass(frozen=True, slots=True)
class Support:
    """A chunk that supports a sentence (score at or above the threshold)."""

    chunk_id: str
    doc_id: str
    score: float
    origin: Origin
    rank: int | None  # rank in the served or replayed list; None for index-only support


@dataclass
class SentenceTrace:
    index: int
    text: str
    start: int
    end: int
    status: SentenceStatus
    served_score: float | None  # best score among served chunks (None: nothing served)
    replayed_rank: int | None  # best replayed rank of a supporting chunk
    best_chunk_id: str | None  # best support anywhere (index-wide)
    best_doc_id: str | None
    best_score: float
    composite: bool = False  # supported only by adjacent chunks joined
    supports: list[Support] = field(default_factory=list)
    conflicts: list[ConflictRef] = field(default_factory=list)  # only when not supported


@dataclass
class AnswerTrace:
    query_id: str
    has_served: bool  # the log carried a served list
    sentences: list[SentenceTrace]
    doc_cover: Cover  # scatter in documents
    chunk_cover: Cover  # scatter in chunks
    effective_sources: float | None
    # chunk id → doc_id, title, text of every chunk a sentence cites (stored with the run,
    # so an answer can be read against its sources without the index)
    passages: dict[str, dict[str, str]] = field(default_factory=dict)

    def evidence_docs(self) -> list[str]:
        """Silver labels: the best-supporting document of each supported sentence."""
        return sorted({s.best_doc_id for s in self.sentences if s.status in GROUNDED
                       and s.best_doc_id is not None})


def _passage(entry: dict[str, str]) -> str:
    return support_passage(entry.get("title") or "", entry["text"])


class Tracer:
    """Traces the answers of replayed batches against one backend."""

    def __init__(self, backend: Backend, scorer: SupportScorer, ks: Sequence[int]) -> None:
        self.backend = backend
        self.scorer = scorer
        self.top = max(ks)

    def trace(self, rows: list[Replayed]) -> dict[str, AnswerTrace]:
        sentences = {
            row.record.query_id: [s for s in split_sentences(row.record.answer or "")
                                  if is_factual(s)]
            for row in rows
        }
        texts = [s.text for group in sentences.values() for s in group]
        if not texts:
            return {}
        deep = self._deep_search(texts)
        served = self._served_chunks({row.record.query_id: row.record.served_ids()
                                      for row in rows})
        pool = {cid for chunk_ids in served.values() for cid in chunk_ids}
        pool |= {hit.chunk_id for row in rows for hit in row.hits[: self.top]}
        pool |= {cid for hits in deep for cid in hits}
        entries = self.backend.fetch(sorted(pool))
        planned: list[tuple[Replayed, list, list[str], PrunedPlan]] = []
        cursor = 0
        for row in rows:
            group = sentences[row.record.query_id]
            if not group:
                continue
            candidates = self._candidates(row, served[row.record.query_id],
                                          deep[cursor : cursor + len(group)], entries)
            cursor += len(group)
            plan = plan_pruned([s.text for s in group],
                               [_passage(entries[cid]) for cid in candidates])
            planned.append((row, group, candidates, plan))
        # what the batch's scores need and the cache holds, read in one store lookup
        self.scorer.prefetch([t for *_, plan in planned for t in plan.texts()])
        traces: dict[str, AnswerTrace] = {}
        for row, group, candidates, plan in planned:
            trace = self._trace_one(row, group, served[row.record.query_id], candidates,
                                    self.scorer.score_plan(plan), entries)
            cited = {u.chunk_id for s in trace.sentences for u in s.supports}
            cited |= {c.chunk_id for s in trace.sentences for c in s.conflicts}
            cited |= {s.best_chunk_id for s in trace.sentences if s.best_chunk_id}
            trace.passages = {cid: entries[cid] for cid in sorted(cited) if cid in entries}
            traces[row.record.query_id] = trace
        return traces

    def _deep_search(self, texts: list[str]) -> list[list[str]]:
        """Candidate chunk ids per sentence: lexical and dense hits with the sentence as query."""
        found: list[list[str]] = [[] for _ in texts]
        for mode in ("bm25", "dense"):
            try:
                results = self.backend.search_many(texts, mode, EVIDENCE_DEPTH)
            except BackendError:  # e.g. a BM25-only index: lexical evidence still counts
                continue
            for slot, result in zip(found, results, strict=True):
                slot.extend(hit.chunk_id for hit in result.hits if hit.chunk_id not in slot)
        return found

    def _served_chunks(self, served: dict[str, list[str]]) -> dict[str, list[str]]:
        """Served ids as chunk ids, in served order: chunk ids stay, document ids expand to
        their chunks. One membership call and one lookup for the whole batch."""
        ids = sorted({i for values in served.values() for i in values})
        if not ids:
            return {query_id: [] for query_id in served}
        is_chunk = dict(zip(ids, self.backend.contains(ids, "chunk"), strict=True))
        docs = [i for i in ids if not is_chunk[i]]
        by_doc = self.backend.doc_chunks(docs) if docs else {}
        return {
            query_id: [c for i in values for c in ([i] if is_chunk[i] else by_doc.get(i, []))]
            for query_id, values in served.items()
        }

    def _candidates(self, row: Replayed, served_chunks: list[str], deep: list[list[str]],
                    entries: dict[str, dict[str, str]]) -> list[str]:
        """Served, replayed (top ``max(k)``) and deep-search chunks, in that order, once."""
        replayed = [hit.chunk_id for hit in row.hits[: self.top]]
        candidates = dict.fromkeys(
            [*served_chunks, *replayed, *(cid for hits in deep for cid in hits)])
        return [cid for cid in candidates if cid in entries]

    def _trace_one(
        self,
        row: Replayed,
        group: list,
        served_chunks: list[str],
        candidates: list[str],
        scores: np.ndarray,
        entries: dict[str, dict[str, str]],
    ) -> AnswerTrace:
        replayed_rank = {hit.chunk_id: hit.rank for hit in row.hits[: self.top]}
        served_rank = {cid: rank for rank, cid in enumerate(served_chunks, start=1)}
        conflicts = self._conflicts(group, candidates, entries, served_rank, replayed_rank)
        traced = [
            self._sentence(sentence, scores[i], candidates, entries, served_rank, replayed_rank,
                           has_served=bool(row.record.served), conflicts=conflicts[i])
            for i, sentence in enumerate(group)
        ]
        doc_support: dict[str, set[int]] = {}
        chunk_support: dict[str, set[int]] = {}
        for sentence in traced:
            for support in sentence.supports:
                doc_support.setdefault(support.doc_id, set()).add(sentence.index)
                chunk_support.setdefault(support.chunk_id, set()).add(sentence.index)
        best = {s.index: s.best_doc_id for s in traced if s.status in GROUNDED
                and s.best_doc_id is not None}
        return AnswerTrace(row.record.query_id, bool(row.record.served), traced,
                           min_cover(doc_support),
                           min_cover(chunk_support), effective_sources(best))

    @staticmethod
    def _conflicts(group: list, candidates: list[str], entries: dict[str, dict[str, str]],
                   served_rank: dict[str, int], replayed_rank: dict[str, int]
                   ) -> list[list[ConflictRef]]:
        """Per sentence, the retrieved chunks (served, then replayed) that conflict with it."""
        refs: list[tuple[str, Literal["served", "replayed"], int]] = [
            (cid, origin, ranks[cid]) for cid in candidates
            for origin, ranks in (("served", served_rank), ("replayed", replayed_rank))
            if cid in ranks]
        if not refs:
            return [[] for _ in group]
        passages = {cid: _passage(entries[cid]) for cid, _, _ in refs}
        ids = list(passages)
        matrix = conflict_matrix([s.text for s in group], [passages[cid] for cid in ids])
        found: list[list[ConflictRef]] = []
        for row in matrix:
            at = dict(zip(ids, row, strict=True))
            found.append([ConflictRef(cid, entries[cid]["doc_id"], origin, rank,
                                      c.kind, c.answer, c.passage)
                          for cid, origin, rank in refs if (c := at[cid]) is not None])
        return found

    def _sentence(self, sentence, row_scores: np.ndarray, candidates: list[str],
                  entries: dict[str, dict[str, str]], served_rank: dict[str, int],
                  replayed_rank: dict[str, int], has_served: bool,
                  conflicts: list[ConflictRef]) -> SentenceTrace:
        supports: list[Support] = []
        for cid, score in zip(candidates, row_scores.tolist(), strict=True):
            if not supported(score):
                continue
            doc = entries[cid]["doc_id"]
            if cid in served_rank:
                supports.append(Support(cid, doc, score, "served", served_rank[cid]))
            if cid in replayed_rank:
                supports.append(Support(cid, doc, score, "replayed", replayed_rank[cid]))
            if cid not in served_rank and cid not in replayed_rank:
                supports.append(Support(cid, doc, score, "index", None))
        best_at = int(np.argmax(row_scores)) if len(candidates) else None
        best_score = float(row_scores[best_at]) if best_at is not None else 0.0
        best_chunk = candidates[best_at] if best_at is not None else None
        served_scores = [s for cid, s in zip(candidates, row_scores.tolist(), strict=True)
                         if cid in served_rank]
        ranks = [s.rank for s in supports if s.origin == "replayed" and s.rank is not None]
        composite = False
        if not supports and best_chunk is not None:
            composite = self._composite(sentence.text, entries[best_chunk]["doc_id"])
        if any(s.origin == "served" for s in supports) or (not has_served and ranks):
            status: SentenceStatus = "supported"
        elif supports or composite:
            status = "retrievable_not_retrieved"
        elif conflicts:
            status = "contradicted"
        else:
            status = "ungrounded"
        return SentenceTrace(
            index=sentence.index, text=sentence.text, start=sentence.start, end=sentence.end,
            status=status,
            served_score=max(served_scores) if served_scores else None,
            replayed_rank=min(ranks) if ranks else None,
            best_chunk_id=best_chunk,
            best_doc_id=entries[best_chunk]["doc_id"] if best_chunk else None,
            best_score=best_score, composite=composite, supports=supports,
            conflicts=[] if status == "supported" else conflicts,
        )

    def _composite(self, sentence: str, doc_id: str) -> bool:
        """Adjacent chunks of the best document joined: support split by chunking."""
        chunk_ids = self.backend.doc_chunks([doc_id]).get(doc_id, [])
        if len(chunk_ids) < 2:
            return False
        entries = self.backend.fetch(chunk_ids)
        texts = [entries[cid]["text"] for cid in chunk_ids if cid in entries]
        return composite_support(self.scorer, sentence, texts).composite


def coverage(trace: AnswerTrace, k: int | None) -> float | None:
    """Share of sentences supported by served chunks (k None) or by the replayed top-k."""
    if not trace.sentences or (k is None and not trace.has_served):
        return None
    if k is None:
        hits = sum(any(s.origin == "served" for s in t.supports) for t in trace.sentences)
    else:
        hits = sum(t.replayed_rank is not None and t.replayed_rank <= k for t in trace.sentences)
    return hits / len(trace.sentences)


def index_coverage(trace: AnswerTrace) -> float | None:
    if not trace.sentences:
        return None
    return sum(t.status in GROUNDED for t in trace.sentences) / len(trace.sentences)


def sentence_support(trace: AnswerTrace | None) -> list[SentenceSupport]:
    """The trace's sentences as the diagnosis rules see them."""
    if trace is None:
        return []
    return [
        SentenceSupport(
            index=s.index, text=s.text,
            supported_served=any(u.origin == "served" for u in s.supports),
            replayed_rank=s.replayed_rank,
            supported_index=s.status in GROUNDED and not (s.composite and not s.supports),
            composite_only=s.composite and not s.supports,
            best_chunk_id=s.best_chunk_id, best_doc_id=s.best_doc_id, best_score=s.best_score,
            conflicts=list(s.conflicts),
        )
        for s in trace.sentences
    ]
