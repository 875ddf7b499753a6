"""What an audit will embed about the corpus, embedded once at ``index build``.

The support score (``auditor.evidence``) embeds each candidate passage as the tracer builds it
(title, then text) and the windows of one or two of its sentences; the self-probe
(``auditor.corpus``) embeds each document's probe (its title, else its first sentence).
These texts depend on the corpus only, so the index build puts their vectors into the
store's embedding cache, keyed by content hash like every other vector: an audit then embeds
only its queries and answer sentences, and a rebuild of an unchanged corpus embeds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from auditor.embed import CachedEncoder
from auditor.evidence import passage_windows, support_passage
from auditor.metrics.corpus import probe_text
from auditor.records import Chunk

STEP = 512  # texts per encode call (the model batches inside; this bounds memory)


def corpus_texts(chunks: Iterable[Chunk]) -> Iterator[str]:
    """Every text an audit embeds from the corpus alone: per chunk its support passage and
    the passage's windows; per document the self-probe of its first chunk (index order)."""
    probed: set[str] = set()
    for chunk in chunks:
        if chunk.doc_id not in probed:
            probed.add(chunk.doc_id)
            yield probe_text(chunk.title, chunk.text)
        passage = support_passage(chunk.title, chunk.text)
        yield passage
        yield from passage_windows(passage)


def prefetch(encoder: CachedEncoder, chunks: Iterable[Chunk],
             progress: Callable[[int], None] | None = None, step: int = STEP) -> int:
    """Embed (through the cache) every text of :func:`corpus_texts`; returns how many texts
    were looked up. ``progress`` gets the number of texts of each step done."""
    done = 0
    batch: list[str] = []
    for text in corpus_texts(chunks):
        batch.append(text)
        if len(batch) >= step:
            done += _encode(encoder, batch, progress)
            batch = []
    if batch:
        done += _encode(encoder, batch, progress)
    return done


def _encode(encoder: CachedEncoder, batch: list[str],
            progress: Callable[[int], None] | None) -> int:
    encoder.encode(batch)
    if progress:
        progress(len(batch))
    return len(batch)
