"""Ablations: what the diagnosis rules need, gathered in batches for the queries that miss.

The same queries replayed in other modes (``bm25``, ``dense``, ``exact`` kNN, the template
without filters), the texts of missed targets and of the top k, the index's analysis of
query and target terms, and on Elasticsearch ``_explain`` of missed targets found within
depth. Nothing here raises: what cannot be gathered is noted in the findings' ``notes``
and the rules that need it stay silent. The cases are read, never changed: ``gather``
returns one ``Findings`` per case and the caller attaches them (``QueryCase.with_findings``).
"""

from __future__ import annotations

from auditor.backends import Backend, BackendError, Explainer
from auditor.cases import (
    ANN_MODES,
    Findings,
    QueryCase,
    Ranking,
    Thresholds,
    missed_targets,
    uncovered_sentences,
)

MAX_DOC_CHUNKS = 64  # chunks of a document-level target read for its terms


Found = list[tuple[QueryCase, Findings]]  # a case and what has been found for it so far


def gather(cases: list[QueryCase], backend: Backend, mode: str, thresholds: Thresholds,
           template: bool) -> list[Findings]:
    """Ablations, texts, terms and explanations of the cases that miss at ``k``: one
    ``Findings`` per case, in order (empty for cases answered, in error or missing nothing).

    Ablations replay the missing cases' queries at their depth in ``bm25``, ``dense``,
    ``exact`` (runs in ``ANN_MODES``) and ``unfiltered`` (``template`` runs), one
    ``search_many`` per mode and depth; the run's own mode reuses its hits. Texts: the
    missed targets' chunks (a document's first ``MAX_DOC_CHUNKS``) and the top-k chunks.
    Terms: the backend's analysis of the query and of each missed target's text. ``_explain``
    (backends that have it; bm25 and hybrid runs, where it explains the lexical ranking): the
    best chunk of each missed target found within depth. What cannot be gathered is noted
    in the findings' ``notes`` and the rules that need it stay silent; nothing here raises.
    """
    k = thresholds.k
    found = [Findings() for _ in cases]
    todo = [(c, f) for c, f in zip(cases, found, strict=True) if c.status == "ok" and c.hits
            and (missed_targets(c, k) or uncovered_sentences(c, k))]
    if not todo:
        return found
    modes: list[str] = ["bm25", "dense"]
    modes += ["exact"] if mode in ANN_MODES else []
    modes += ["unfiltered"] if template else []
    for depth in sorted({c.depth for c, _ in todo}):
        group = [(c, f) for c, f in todo if c.depth == depth]
        for ablation in modes:
            _ablate(group, backend, ablation, depth, reuse=ablation == mode)
    _gather_texts(todo, backend, k)
    if isinstance(backend, Explainer) and mode in ("bm25", "hybrid"):
        _gather_explanations(todo, backend, k)
    return found


def _ablate(group: Found, backend: Backend, ablation: str, depth: int, reuse: bool) -> None:
    if reuse:
        for case, findings in group:
            findings.ablations[ablation] = list(case.hits)
        return
    queries = list(dict.fromkeys(case.query for case, _ in group))
    try:
        results = backend.search_many(queries, ablation, depth)  # type: ignore[arg-type]
    except BackendError as exc:
        for _, findings in group:
            findings.notes[ablation] = str(exc)
        return
    by_query = dict(zip(queries, results, strict=True))
    for case, findings in group:
        result = by_query[case.query]
        if result.error is not None:
            findings.notes[ablation] = result.error
        else:
            findings.ablations[ablation] = result.hits


def _gather_texts(cases: Found, backend: Backend, k: int) -> None:
    missed = {c.query_id: missed_targets(c, k) for c, _ in cases}
    doc_targets = sorted({t for c, _ in cases if c.level == "doc" for t in missed[c.query_id]})
    try:
        doc_chunks = backend.doc_chunks(doc_targets) if doc_targets else {}
        wanted: set[str] = set()
        for case, _ in cases:
            replayed = Ranking.of(case.hits, case.level)
            wanted.update(replayed.chunk[i] for i in replayed.ids[:k])
            for target in missed[case.query_id]:
                wanted.update(doc_chunks.get(target, [])[:MAX_DOC_CHUNKS]
                              if case.level == "doc" else [target])
        fetched = backend.fetch(sorted(wanted))
    except BackendError as exc:
        for _, findings in cases:
            findings.notes["texts"] = str(exc)
        return
    texts = {cid: f"{row['title']} {row['text']}".strip() for cid, row in fetched.items()}
    documents: dict[tuple[str, str], str] = {}  # (case level, target) → the text analyzed
    for case, findings in cases:
        replayed = Ranking.of(case.hits, case.level)
        for item in replayed.ids[:k]:
            if replayed.chunk[item] in texts:
                findings.texts[replayed.chunk[item]] = texts[replayed.chunk[item]]
        for target in missed[case.query_id]:
            chunks = doc_chunks.get(target, []) if case.level == "doc" else [target]
            if case.level == "doc" and len(chunks) > MAX_DOC_CHUNKS:
                findings.notes["target_terms"] = (f"documents over {MAX_DOC_CHUNKS} chunks: "
                                                  f"terms of their first {MAX_DOC_CHUNKS} "
                                                  "chunks only")
            parts = [texts[c] for c in chunks[:MAX_DOC_CHUNKS] if c in texts]
            findings.texts.update({c: texts[c] for c in chunks[:MAX_DOC_CHUNKS] if c in texts})
            if parts:
                documents[(case.level, target)] = "\n".join(parts)
    queries = sorted({c.query for c, _ in cases})
    keys = sorted(documents)
    try:
        analyzed = backend.analyze(queries + [documents[key] for key in keys])
    except BackendError as exc:
        for _, findings in cases:
            findings.notes["terms"] = str(exc)
        return
    query_terms = dict(zip(queries, analyzed[:len(queries)], strict=True))
    target_terms = dict(zip(keys, analyzed[len(queries):], strict=True))
    for case, findings in cases:
        findings.query_terms = query_terms[case.query]
        for target in missed[case.query_id]:
            if (case.level, target) in target_terms:
                findings.target_terms[target] = target_terms[(case.level, target)]


def _gather_explanations(cases: Found, backend: Explainer, k: int) -> None:
    wanted: list[tuple[QueryCase, Findings, str, str]] = []
    for case, findings in cases:
        replayed = Ranking.of(case.hits, case.level)
        wanted += [(case, findings, t, replayed.chunk[t]) for t in missed_targets(case, k)
                   if replayed.rank(t) is not None]
    if not wanted:
        return
    try:
        explained = backend.explain_many([(case.query, chunk) for case, _, _, chunk in wanted])
    except BackendError as exc:
        for _, findings, _, _ in wanted:
            findings.notes["explain"] = str(exc)
        return
    for (_, findings, target, _), explanation in zip(wanted, explained, strict=True):
        findings.explain[target] = explanation
