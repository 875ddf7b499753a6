"""Reciprocal rank fusion: how hybrid mode joins a lexical and a dense ranking, the same on
every backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from auditor.records import Hit

RRF_K = 60


def fuse_rrf(rankings: Iterable[Sequence[Hit]], depth: int, k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank).

    Ties break by chunk id ascending, as every ranking in this project does.
    """
    scores: dict[str, float] = {}
    docs: dict[str, str] = {}
    for ranking in rankings:
        for hit in ranking:
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + hit.rank)
            docs[hit.chunk_id] = hit.doc_id
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:depth]
    return [
        Hit(chunk_id=cid, doc_id=docs[cid], rank=rank, score=score)
        for rank, (cid, score) in enumerate(ordered, start=1)
    ]
