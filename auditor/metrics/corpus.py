"""Corpus coverage: which documents retrieval ever reaches.

- ``corpus_coverage@k`` = share of indexed documents in the top k of at least one replayed
  query; the others are the never-retrieved list (at k and at the probe depth).
- ``gini`` of per-document retrieval counts at k (0: every document retrieved equally often;
  near 1: a few documents take every slot). Documents never retrieved count as zeros.
- ``self-retrievability``: each document probed with its title (or its first sentence when it
  has no title); a document whose probe does not return it in the top k is *unreachable*.
"""

from __future__ import annotations

import re

import numpy as np

FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)")


def gini(counts: np.ndarray) -> float | None:
    """Gini coefficient of non-negative counts; None for an empty corpus or no retrievals."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return None
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * values).sum()) / (n * total) - (n + 1) / n)


def probe_text(title: str, text: str) -> str:
    """The deterministic self-retrieval probe: the title, else the first sentence."""
    if title.strip():
        return title.strip()
    match = FIRST_SENTENCE.match(text.strip())
    return match.group(1) if match else " ".join(text.split()[:30])
