"""The corpus pass, once per run: which documents retrieval reaches, and which it cannot.

Counts come from the run's stored hits (read in the store, in bounded memory); self-retrievability
replays one probe per document (its title, else its first sentence) in batches, in the run's mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from auditor.backends import Backend
from auditor.config import AuditSettings
from auditor.metrics.corpus import gini, probe_text
from auditor.replay import batched
from auditor.store import Store
from auditor.store.read.run_facts import doc_hits

NEVER_LISTED = 50  # never-retrieved ids kept in the run summary (all are in the table)


def corpus_pass(run_id: str, store: Store, backend: Backend,
                settings: AuditSettings) -> dict[str, Any]:
    """Write ``corpus_coverage`` rows for every indexed document; return the run-level figures."""
    k = settings.diagnose_k
    docs: dict[str, str] = {}  # doc id → first chunk id (for the title)
    for chunk_id, doc_id in backend.iter_ids():
        docs.setdefault(doc_id, chunk_id)
    doc_ids = sorted(docs)
    hits = doc_hits(store, run_id, k)
    stats = {doc: (h.at_k, h.at_depth, h.best_rank) for doc, h in hits.items()}
    texts = backend.fetch([docs[d] for d in doc_ids])
    titles = [texts.get(docs[d], {}).get("title", "") for d in doc_ids]
    self_rank = _self_ranks(backend, settings, doc_ids, docs, texts) if settings.self_probe \
        else {}
    at_k = np.array([stats.get(d, (0, 0, None))[0] for d in doc_ids])
    table = pa.table({
        "run_id": [run_id] * len(doc_ids),
        "doc_id": doc_ids,
        "title": titles,
        "retrieved_at_k": pa.array(at_k.tolist(), pa.int32()),
        "retrieved_at_depth": pa.array([stats.get(d, (0, 0, None))[1] for d in doc_ids],
                                       pa.int32()),
        "best_rank": pa.array([stats.get(d, (0, 0, None))[2] for d in doc_ids], pa.int32()),
        "self_rank": pa.array([self_rank.get(d) for d in doc_ids], pa.int32()),
        "reachable": pa.array([(self_rank.get(d) or k + 1) <= k if settings.self_probe else None
                               for d in doc_ids], pa.bool_()),
    })
    store.append({"corpus_coverage": table})
    never_k = [d for d, n in zip(doc_ids, at_k.tolist(), strict=True) if n == 0]
    never_depth = [d for d in doc_ids if d not in stats]
    unreachable = [d for d in doc_ids if settings.self_probe and (self_rank.get(d) or k + 1) > k]
    return {
        "k": k,
        "documents": len(doc_ids),
        f"corpus_coverage@{k}": (len(doc_ids) - len(never_k)) / len(doc_ids) if doc_ids else None,
        "gini": gini(at_k),
        "never_retrieved_at_k": len(never_k),
        "never_retrieved_at_depth": len(never_depth),
        "never_retrieved_examples": never_depth[:NEVER_LISTED] or never_k[:NEVER_LISTED],
        "unreachable": len(unreachable) if settings.self_probe else None,
        "unreachable_examples": unreachable[:NEVER_LISTED],
    }


def _self_ranks(backend: Backend, settings: AuditSettings, doc_ids: list[str],
                docs: dict[str, str], texts: dict[str, dict[str, str]]) -> dict[str, int]:
    """Rank of each document for its own probe (absent when not within k)."""
    ranks: dict[str, int] = {}
    probes = [(d, probe_text(texts.get(docs[d], {}).get("title", ""),
                             texts.get(docs[d], {}).get("text", ""))) for d in doc_ids]
    for batch in batched(probes, settings.batch_size):
        results = backend.search_many([p for _, p in batch], settings.mode, settings.diagnose_k)
        for (doc_id, _), result in zip(batch, results, strict=True):
            seen: list[str] = []
            for hit in result.hits:
                if hit.doc_id not in seen:
                    seen.append(hit.doc_id)
            if doc_id in seen:
                ranks[doc_id] = seen.index(doc_id) + 1
    return ranks
