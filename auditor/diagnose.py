"""Why retrieval failed: causes per query, multi-label, each with the evidence behind it.

Two steps. ``auditor.ablations.gather`` collects, in batches, what the rules need for the
queries that miss something at ``k``: the same queries replayed in other modes (ablations),
texts, analyzed terms and, on Elasticsearch, ``_explain``. :func:`diagnose` (here) is pure:
one rule per cause, registered in ``RULES`` (the rule in words, one README line) next to
its function. The case, its causes and thresholds, and the vocabulary (target, missed,
uncovered) are in ``auditor.cases``. Target causes give one row per target (``target_id``
set); query causes one row per query (``target_id`` null).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.cases import (
    ANN_MODES,
    CAUSES,
    EMPTY_CAUSES,
    Cause,
    Diagnosis,
    QueryCase,
    Ranking,
    SentenceSupport,
    Thresholds,
    missed_targets,
    term_overlap,
    uncovered_sentences,
)
from auditor.metrics.drift import overlap_at_k, rbo

MIN_EDIT_WORDS = 10  # texts this long that differ by one replaced word are near-duplicates


# rules -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """What every rule looks at, computed once per case."""

    replayed: Ranking
    ablations: dict[str, Ranking]
    missed: list[str]
    uncovered: list[SentenceSupport]

    def ranks(self, target: str, *modes: str) -> dict[str, int | None]:
        found = {"replayed": self.replayed, **self.ablations}
        return {f"{mode}_rank": found[mode].rank(target) if mode in found else None
                for mode in modes}


Rule = Callable[[QueryCase, Thresholds, Facts], list[Diagnosis]]
RULE_FUNCTIONS: dict[Cause, Rule] = {}
RULES: dict[Cause, str] = {}  # cause → the rule in words, with its threshold names


def rule(cause: Cause, text: str) -> Callable[[Rule], Rule]:
    """Register the rule of ``cause``; ``text`` is the rule in words, one README line."""
    if not text or "\n" in text or cause in RULES:
        raise ValueError(f"rule {cause}: one rule, one line of text")

    def register(function: Rule) -> Rule:
        RULE_FUNCTIONS[cause], RULES[cause] = function, text
        return function

    return register


def _row(case: QueryCase, cause: Cause, target: str | None, **evidence: Any) -> Diagnosis:
    return Diagnosis(case.query_id, cause, target, evidence)


@rule("not_indexed", "a target (judged relevant or silver evidence id) is absent from the index")
def _not_indexed(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    return [_row(case, "not_indexed", target, missing_ids=list(case.missing_targets),
                 level=case.level, silver=case.silver) for target in case.missing_targets]


@rule(
    "ranked_below_k",
    "a target in the index is not in the replayed top-k but further down, at rank r with k < "
    "r ≤ depth",
)
def _ranked_below_k(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    rows = []
    for target in f.missed:
        rank = f.replayed.rank(target)
        if rank is None:
            continue
        score, at_k = f.replayed.score[target], f.replayed.score[f.replayed.ids[t.k - 1]]
        rows.append(_row(case, "ranked_below_k", target, rank=rank, k=t.k, depth=case.depth,
                         score=score, score_at_k=at_k, score_gap=at_k - score,
                         chunk_id=f.replayed.chunk[target], explain=case.explain.get(target)))
    return rows


@rule(
    "not_retrieved",
    "a target in the index is not in the replayed list at all (not within depth)",
)
def _not_retrieved(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    rows = []
    dense = f.ablations.get("dense")
    for target in f.missed:
        if f.replayed.rank(target) is not None:
            continue
        rows.append(_row(case, "not_retrieved", target, depth=case.depth,
                         term_overlap=term_overlap(case, target),
                         dense_similarity=dense.score.get(target) if dense else None,
                         **f.ranks(target, "bm25", "dense")))
    return rows


@rule(
    "vocabulary_mismatch",
    "a missed target is outside the bm25 top-k while dense has it in top-k and it holds less "
    "than high_term_overlap of the analyzed query terms, or less than low_term_overlap (bm25 "
    "missing it too)",
)
def _vocabulary_mismatch(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    bm25, dense = f.ablations.get("bm25"), f.ablations.get("dense")
    rows = []
    for target in f.missed:
        lexical_miss = bm25 is None or not bm25.within(target, t.k)
        by = []
        overlap = term_overlap(case, target)
        if (bm25 is not None and dense is not None and lexical_miss and dense.within(target, t.k)
                and (overlap is None or overlap < t.high_term_overlap)):
            by.append("ablation")
        if overlap is not None and overlap < t.low_term_overlap and lexical_miss:
            by.append("term_overlap")
        if not by:
            continue
        terms = case.target_terms.get(target)
        absent = None if terms is None else [
            w for w in dict.fromkeys(case.query_terms) if w not in set(terms)]
        rows.append(_row(case, "vocabulary_mismatch", target, by=by, term_overlap=overlap,
                         missing_terms=absent, query_terms=list(case.query_terms),
                         **f.ranks(target, "bm25", "dense")))
    return rows


@rule(
    "semantic_miss",
    "a missed target is in the bm25 ablation's top-k but not in the dense ablation's top-k",
)
def _semantic_miss(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    bm25, dense = f.ablations.get("bm25"), f.ablations.get("dense")
    if bm25 is None or dense is None:
        return []
    at_k = dense.score[dense.ids[t.k - 1]] if len(dense.ids) >= t.k else None
    return [_row(case, "semantic_miss", target, dense_similarity=dense.score.get(target),
                 dense_similarity_at_k=at_k, **f.ranks(target, "bm25", "dense"))
            for target in f.missed if bm25.within(target, t.k) and not dense.within(target, t.k)]


@rule(
    "ann_loss",
    "dense, hybrid or template run: a missed target is in the exact-kNN ablation's top-k but "
    "not in the approximate dense ablation's top-k",
)
def _ann_loss(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    exact, dense = f.ablations.get("exact"), f.ablations.get("dense")
    if case.mode not in ANN_MODES or exact is None or dense is None:
        return []
    return [_row(case, "ann_loss", target, exact_similarity=exact.score.get(target),
                 **f.ranks(target, "exact", "dense"))
            for target in f.missed if exact.within(target, t.k) and not dense.within(target, t.k)]


@rule(
    "fusion_loss",
    "hybrid run: a missed target is in the top-k of a component ablation (bm25 or dense) but "
    "not in the fused top-k",
)
def _fusion_loss(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    if case.mode != "hybrid":
        return []
    components = [f.ablations[m] for m in ("bm25", "dense") if m in f.ablations]
    return [_row(case, "fusion_loss", target, **f.ranks(target, "bm25", "dense", "replayed"))
            for target in f.missed if any(c.within(target, t.k) for c in components)]


@rule(
    "filtered_out",
    "template run: a missed target is in the top-k of the template with its filters stripped",
)
def _filtered_out(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    unfiltered = f.ablations.get("unfiltered")
    if case.mode != "template" or unfiltered is None:
        return []
    return [_row(case, "filtered_out", target, **f.ranks(target, "unfiltered", "replayed"))
            for target in f.missed if unfiltered.within(target, t.k)]


@rule(
    "scattered",
    "the answer's support needs more than k chunks (not gatherable at k) or more than "
    "scatter_limit documents",
)
def _scattered(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    chunks, docs = case.scatter_chunks, case.scatter_docs
    if not ((chunks is not None and chunks > t.k) or (docs is not None and docs > t.scatter_limit)):
        return []
    supported = [s for s in case.sentences if s.supported_index or s.composite_only]
    return [_row(case, "scattered", None, scatter_docs=docs, scatter_chunks=chunks, k=t.k,
                 scatter_limit=t.scatter_limit, gatherable=chunks is not None and chunks <= t.k,
                 docs=sorted({s.best_doc_id for s in supported if s.best_doc_id}),
                 chunks=sorted({s.best_chunk_id for s in supported if s.best_chunk_id}))]


def _sentence_rows(sentences: list[SentenceSupport]) -> list[dict[str, Any]]:
    return [{"index": s.index, "text": s.text, "best_chunk_id": s.best_chunk_id,
             "best_doc_id": s.best_doc_id, "best_score": s.best_score} for s in sentences]


@rule(
    "chunk_split",
    "an answer sentence is supported only by adjacent chunks of one document joined, by no "
    "single chunk",
)
def _chunk_split(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    split = [s for s in case.sentences if s.composite_only]
    return [_row(case, "chunk_split", None, sentences=_sentence_rows(split))] if split else []


@rule(
    "crowded_out",
    "something is missed at k while one document (chunk level) or one group of "
    "near-duplicates (content-word Jaccard ≥ duplicate_jaccard, or one word edited) fills at "
    "least crowded_share of the k slots",
)
def _crowded_out(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    if not (f.missed or f.uncovered):
        return []
    units = [f.replayed.chunk[i] for i in f.replayed.ids[:t.k]]  # one chunk per top-k item
    evidence: dict[str, Any] = {"k": t.k}
    shares = []
    if case.level == "chunk":
        docs = [hit.doc_id for hit in case.hits[:t.k]]
        top_doc = max(sorted(set(docs)), key=docs.count, default=None)
        if top_doc is not None:
            share = docs.count(top_doc) / t.k
            evidence["dominant_doc"] = {"doc_id": top_doc, "chunks": docs.count(top_doc),
                                        "share": share}
            shares.append(share)
    groups = duplicate_groups({u: case.texts[u] for u in units if u in case.texts},
                              t.duplicate_jaccard)
    if groups:
        evidence["duplicate_groups"] = groups
        shares.append(len(groups[0]) / t.k)
    if not shares or max(shares) < t.crowded_share:
        return []
    evidence["share"] = max(shares)
    return [_row(case, "crowded_out", None, missed=f.missed,
                 uncovered_sentences=[s.index for s in f.uncovered], **evidence)]


def duplicate_groups(texts: dict[str, str], threshold: float) -> list[list[str]]:
    """Groups (two or more) of texts linked by content-word Jaccard ≥ threshold, largest
    first; members in the given order."""
    from auditor.sentences import content_words

    ids = list(texts)
    words = [set(content_words(texts[i])) for i in ids]
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            union = words[a] | words[b]
            shared = len(words[a] & words[b])
            edited = (len(union) >= MIN_EDIT_WORDS and len(words[a] - words[b]) <= 1
                      and len(words[b] - words[a]) <= 1)  # at most one word replaced
            if union and (shared / len(union) >= threshold or edited):
                parent[root(b)] = root(a)
    groups: dict[int, list[str]] = {}
    for i, item in enumerate(ids):
        groups.setdefault(root(i), []).append(item)
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)


@rule(
    "unsupported_answer",
    "a factual answer sentence is supported by no chunk of the index, single or adjacent "
    "chunks joined",
)
def _unsupported_answer(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    alone = [s for s in case.sentences if not s.supported_index and not s.composite_only]
    if not alone:
        return []
    return [_row(case, "unsupported_answer", None, sentences=_sentence_rows(alone),
                 share=len(alone) / len(case.sentences))]


@rule(
    "conflicting_evidence",
    "an answer sentence retrieval did not support has a served or replayed chunk within rank "
    "k that states another number, date or name in the same context",
)
def _conflicting_evidence(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    rows = []
    for s in case.sentences:
        within = [c for c in s.conflicts if c.rank <= t.k]
        if within:
            alone = not (s.supported_index or s.composite_only)  # no support anywhere
            rows.append({"index": s.index, "text": s.text, "contradicted": alone,
                         "conflicts": [{"chunk_id": c.chunk_id, "doc_id": c.doc_id,
                                        "origin": c.origin, "rank": c.rank, "kind": c.kind,
                                        "answer": c.answer, "passage": c.passage}
                                       for c in within]})
    if not rows:
        return []
    return [_row(case, "conflicting_evidence", None, k=t.k, sentences=rows)]


@rule("drifted", "a served list is logged and overlap@k(served, replayed) is below drift_overlap")
def _drifted(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    if case.served is None:
        return []
    overlap = overlap_at_k(case.served, f.replayed.ids, t.k)
    if overlap is None or overlap >= t.drift_overlap:
        return []
    return [_row(case, "drifted", None, overlap=overlap, rbo=rbo(case.served, f.replayed.ids),
                 k=t.k, served_top_k=case.served[:t.k], replayed_top_k=f.replayed.ids[:t.k])]


@rule("empty_result", "replay returned no hits (then no other cause but not_indexed is looked for)")
def _empty_result(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    if not _is_empty(case):
        return []
    return [_row(case, "empty_result", None, mode=case.mode,
                 replay_latency_ms=case.replay_latency_ms,
                 served=None if case.served is None else len(case.served))]


@rule("slow", "the replay latency or the served latency is over slow_ms")
def _slow(case: QueryCase, t: Thresholds, f: Facts) -> list[Diagnosis]:
    over = [name for name, value in (("replay", case.replay_latency_ms),
                                     ("served", case.served_latency_ms))
            if value is not None and value > t.slow_ms]
    if not over:
        return []
    return [_row(case, "slow", None, over=over, replay_latency_ms=case.replay_latency_ms,
                 served_latency_ms=case.served_latency_ms, slow_ms=t.slow_ms)]


def _is_empty(case: QueryCase) -> bool:
    return case.status == "empty" or (case.status == "ok" and not case.hits)


def diagnose(case: QueryCase, thresholds: Thresholds) -> list[Diagnosis]:
    """Every cause whose rule holds for ``case``, in ``CAUSES`` order, targets in order.

    A query with status ``error`` gets none (its error is recorded with the replay); an
    empty one only ``EMPTY_CAUSES``. Rules whose ablation is missing (see ``case.notes``)
    stay silent rather than guess.
    """
    if case.status == "error":
        return []
    replayed = Ranking.of(case.hits, case.level)
    facts = Facts(
        replayed=replayed,
        ablations={m: Ranking.of(hits, case.level) for m, hits in case.ablations.items()},
        missed=missed_targets(case, thresholds.k, replayed),
        uncovered=uncovered_sentences(case, thresholds.k),
    )
    causes = EMPTY_CAUSES if _is_empty(case) else CAUSES
    return [row for cause in causes for row in RULE_FUNCTIONS[cause](case, thresholds, facts)]

