"""Knowledge gaps: what users ask that the corpus cannot answer, grouped by topic.

A run's failures are listed query by query elsewhere; here its queries are clustered by
their vectors (scikit-learn's KMeans, seeded, so the same run gives the same clusters), each
cluster is named by its distinctive terms (class-based TF-IDF: a term's frequency in the
cluster's queries against its frequency in all of them) and set against the corpus.

*Corpus density* is the share of indexed chunks (a seeded sample of at most
``CHUNK_SAMPLE``) whose nearest cluster centroid is the cluster's; next to the cluster's
share of the queries it says whether the corpus covers the topic as much as users ask about
it. A cluster with many failing queries and a density below its query share is a gap:
``gap_score`` = failure share × queries, the order clusters are listed in.
"""

from __future__ import annotations

import heapq
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from auditor.cases import DRIFT
from auditor.errors import BackendError
from auditor.evidence import support_passage

if TYPE_CHECKING:
    from auditor.backends import Backend
    from auditor.embed import CachedEncoder
    from auditor.store import Store

MIN_QUERIES = 10  # fewer queries than this: not evaluated (no topic has enough to say)
MAX_CLUSTERS = 40
QUERY_SAMPLE = 50_000  # a larger run is clustered on a seeded sample of its queries
CHUNK_SAMPLE = 20_000
TERMS = 3  # distinctive terms that name a cluster
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")


@dataclass(frozen=True)
class QueryFacts:
    """What the gaps view needs of one query of the run."""

    query_id: str
    text: str
    causes: tuple[str, ...]  # failure causes at diagnose_k (drift is not a retrieval failure)
    unsupported: int  # answer sentences the replayed top-k does not support


@dataclass
class Cluster:
    cluster: int
    label: str
    terms: list[str]
    queries: int
    query_share: float
    failing: int
    failure_share: float
    corpus_density: float | None  # None: no chunk vectors to compare with
    top_causes: list[tuple[str, int]]
    unsupported: int
    x: float  # the centroid on a 2-D map of the clusters (PCA of the centroids)
    y: float
    gap_score: float = 0.0


@dataclass
class Gaps:
    clusters: list[Cluster]  # by gap_score, highest first
    members: dict[str, int]  # query_id -> cluster
    chunks: int  # chunks the density was measured on
    seed: int
    not_evaluated: str | None = None  # why there are no clusters


def cluster_count(queries: int) -> int:
    """About sqrt(n/2) topics (a common rule of thumb), at least 2, at most MAX_CLUSTERS,
    and at least 5 queries a cluster on average."""
    return max(2, min(MAX_CLUSTERS, round(math.sqrt(queries / 2)), queries // 5))


def find_gaps(facts: Sequence[QueryFacts], query_vectors: np.ndarray,
              chunk_vectors: np.ndarray | None, seed: int = 0,
              clusters: int | None = None) -> Gaps:
    """Cluster ``facts`` (one row of ``query_vectors`` each, unit vectors) and measure each
    cluster; ``chunk_vectors`` (unit vectors of sampled chunks) gives corpus density."""
    n = len(facts)
    if n < MIN_QUERIES:
        return Gaps([], {}, 0, seed, not_evaluated=f"{n} queries (at least {MIN_QUERIES} "
                                                   "are needed to find topics)")
    from sklearn.cluster import KMeans  # a second or so to import: only when clustering

    k = clusters or cluster_count(n)
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(query_vectors)
    labels = model.labels_
    centroids = model.cluster_centers_
    density = _density(centroids, chunk_vectors)
    terms = class_tfidf_terms([f.text for f in facts], labels, k)
    xy = _map(centroids, seed)
    by_cluster: list[list[QueryFacts]] = [[] for _ in range(k)]
    for f, label in zip(facts, labels, strict=True):
        by_cluster[label].append(f)
    out = []
    for c, rows in enumerate(by_cluster):
        failing = sum(bool(f.causes) for f in rows)
        causes = Counter(cause for f in rows for cause in f.causes)
        share = failing / len(rows) if rows else 0.0
        out.append(Cluster(
            cluster=c, label=" · ".join(terms[c]) or f"cluster {c}", terms=terms[c],
            queries=len(rows), query_share=len(rows) / n, failing=failing,
            failure_share=share, corpus_density=None if density is None else density[c],
            top_causes=causes.most_common(3), unsupported=sum(f.unsupported for f in rows),
            x=float(xy[c, 0]), y=float(xy[c, 1]), gap_score=share * len(rows)))
    out.sort(key=lambda c: (-c.gap_score, -c.queries, c.cluster))
    members = {f.query_id: int(label) for f, label in zip(facts, labels, strict=True)}
    chunks = 0 if chunk_vectors is None else len(chunk_vectors)
    return Gaps(out, members, chunks, seed)


def _density(centroids: np.ndarray, chunks: np.ndarray | None) -> list[float] | None:
    if chunks is None or not len(chunks):
        return None
    nearest = np.argmax(chunks @ centroids.T, axis=1)  # unit vectors: cosine by dot product
    counts = np.bincount(nearest, minlength=len(centroids))
    return [float(c) / len(chunks) for c in counts]


def _map(centroids: np.ndarray, seed: int) -> np.ndarray:
    """2-D positions of the centroids (PCA; two clusters lie on a line)."""
    from sklearn.decomposition import PCA

    components = min(2, len(centroids) - 1, centroids.shape[1])
    xy = PCA(n_components=components, random_state=seed).fit_transform(centroids)
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))


def class_tfidf_terms(texts: Sequence[str], labels: np.ndarray, k: int,
                      top: int = TERMS) -> list[list[str]]:
    """The ``top`` terms most distinctive of each class (BERTopic's class-based TF-IDF:
    tf in the class × log(1 + mean words per class / the term's count in all classes)).
    Written here because it is one formula; scikit-learn has no class-based variant."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    per_class: list[Counter[str]] = [Counter() for _ in range(k)]
    for text, label in zip(texts, labels, strict=True):
        per_class[label].update(w for w in (m.lower() for m in _WORD.findall(text))
                                if len(w) > 2 and w not in ENGLISH_STOP_WORDS)
    total: Counter[str] = Counter()
    for counts in per_class:
        total.update(counts)
    mean_words = sum(total.values()) / k if k else 0.0
    terms = []
    for counts in per_class:
        size = sum(counts.values()) or 1
        score = {w: (n / size) * math.log(1 + mean_words / total[w]) for w, n in counts.items()}
        terms.append(sorted(score, key=lambda w: (-score[w], w))[:top])
    return terms


def measure_gaps(store: Store, run_id: str, encoder: CachedEncoder | None,
                 backend: Backend | None, seed: int = 0) -> Gaps:
    """Find and store a run's knowledge gaps (or why they were not evaluated). The query
    and chunk vectors come through the embedding cache: a run with dense retrieval has its
    queries cached, and ``index build`` cached every chunk's passage."""
    if encoder is None:  # nothing to cluster: the run's queries are not even read
        gaps = Gaps([], {}, 0, seed, not_evaluated="the run has no encoder (bm25 with neither "
                                                   "trace nor ablations): no vectors to cluster")
        store.write_gaps(run_id, {"clusters": 0, "chunks": 0, "seed": seed,
                                  "not_evaluated": gaps.not_evaluated}, [], {})
        return gaps
    total, rows = store.query_facts(run_id, QUERY_SAMPLE, seed)
    facts = [QueryFacts(q, text, tuple(c for c in causes if c != DRIFT), unsupported)
             for q, text, causes, unsupported in rows]
    sampled = (f"topics found on a seeded sample of {len(facts):,} of the run's {total:,} "
               "queries" if total > len(facts) else None)
    if len(facts) < MIN_QUERIES:
        gaps = find_gaps(facts, np.zeros((0, 0)), None, seed)
    else:
        try:
            chunks = chunk_vectors(backend, encoder, seed) if backend else None
        except BackendError as exc:  # the view is made without density, and says so
            chunks = None
            reason = f"corpus density not measured: {exc}"
        else:
            reason = None
        gaps = find_gaps(facts, encoder.encode([f.text for f in facts]), chunks, seed)
        gaps.not_evaluated = "; ".join(note for note in (sampled, reason) if note) or None
    store.write_gaps(run_id, {"clusters": len(gaps.clusters), "chunks": gaps.chunks,
                              "seed": seed, "not_evaluated": gaps.not_evaluated},
                     [asdict(c) for c in gaps.clusters], gaps.members)
    return gaps


def chunk_vectors(backend: Backend, encoder: CachedEncoder, seed: int,
                  sample: int = CHUNK_SAMPLE, step: int = 1_000) -> np.ndarray:
    """Unit vectors of a seeded sample of the index's chunks (their support passages): the
    ``sample`` ids of least CRC32(seed, id), kept while the ids stream by (memory bounded by
    the sample, not the index; the same seed picks the same chunks)."""
    ids = heapq.nsmallest(sample, (chunk_id for chunk_id, _ in backend.iter_ids()),
                          key=lambda chunk_id: zlib.crc32(f"{seed}:{chunk_id}".encode()))
    parts = []
    for start in range(0, len(ids), step):
        found = backend.fetch(ids[start:start + step])
        parts.append(encoder.encode([support_passage(c["title"], c["text"])
                                     for c in found.values()]))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)
