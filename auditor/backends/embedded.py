"""The embedded in-process index: bm25s for lexical search, exact cosine for dense search.

Dense search is already exact, so ``exact`` mode answers exactly as ``dense`` (an ablation
that finds no ANN loss here, by construction). ``template`` and ``unfiltered`` need
Elasticsearch.

On disk an index is a directory of inspectable files, no pickle:

- ``manifest.json``: format, model id, BM25 parameters, counts, content hash;
- ``chunks.jsonl``: one chunk per line (``chunk_id``, ``doc_id``, ``position``, ``title``,
  ``text``), in index order;
- ``bm25/``: the bm25s index (JSON vocabulary and parameters, ``.npy`` sparse matrix);
- ``embeddings.npy``: float32, one L2-normalised row per chunk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from auditor.backends.fusion import fuse_rrf
from auditor.backends.protocol import Fingerprint, SearchResult
from auditor.embed import Encoder
from auditor.errors import BackendError
from auditor.records import Chunk, Hit, HitList, Level, Mode

FORMAT = "auditor-embedded/1"
BM25_PARAMS: dict[str, Any] = {"method": "lucene", "k1": 1.2, "b": 0.75}
Stemmer = Literal["english", "none"]


def _stemmer(name: str) -> Callable[[list[str]], list[str]] | None:
    if name == "none":
        return None
    import Stemmer  # PyStemmer: the Snowball stemmers, as Lucene's `english` analyzer uses

    return Stemmer.Stemmer(name).stemWords


def _tokenize(texts: list[str], stemmer: str) -> list[list[str]]:
    import bm25s

    tokens = bm25s.tokenize(
        texts, stopwords="en", stemmer=_stemmer(stemmer), return_ids=False, show_progress=False
    )
    return [list(row) for row in tokens]


def content_hash(chunks: Iterable[Chunk]) -> str:
    """sha256 over chunks in id order: equal content gives an equal hash, whatever the order."""
    digest = hashlib.sha256()
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        for part in (chunk.chunk_id, chunk.doc_id, str(chunk.position), chunk.title, chunk.text):
            digest.update(part.encode())
            digest.update(b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()


def top_k(scores: np.ndarray, id_order: np.ndarray, depth: int, floor: float | None) -> np.ndarray:
    """Indices of the best ``depth`` scores, ordered by (score desc, chunk id asc).

    Written by hand because argpartition alone breaks ties arbitrarily: everything tied
    with the last admitted score is kept, then lexsorted with the id order.
    """
    candidates = np.flatnonzero(scores > floor) if floor is not None else np.arange(len(scores))
    if len(candidates) > depth:
        kth = np.partition(scores[candidates], len(candidates) - depth)[len(candidates) - depth]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((id_order[candidates], -scores[candidates]))
    return candidates[order][:depth]


class EmbeddedBackend:
    """An index held in this process. Build with :meth:`build`, reopen with :meth:`open`."""

    name = "embedded"

    def __init__(self, directory: Path, encoder: Encoder | None) -> None:
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise BackendError(
                f"no embedded index at {directory}: build one with `auditor index build`"
            )
        self.directory = directory
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise BackendError(f"{directory} holds an index of another format: rebuild it")
        self.chunks: list[Chunk] = [
            Chunk.model_validate_json(line)
            for line in (directory / "chunks.jsonl").read_text().splitlines()
        ]
        self.position = {chunk.chunk_id: row for row, chunk in enumerate(self.chunks)}
        self.doc_ids = {chunk.doc_id for chunk in self.chunks}
        self._doc_chunks: dict[str, list[str]] | None = None
        ids = np.array([chunk.chunk_id for chunk in self.chunks], dtype=object)
        self.id_order = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
        self._chunk_ids = ids  # by row, for the hit lists' columns
        self._doc_ids = np.array([chunk.doc_id for chunk in self.chunks], dtype=object)
        self._encoder = encoder
        self._bm25: Any = None
        self._embeddings: np.ndarray | None = None

    # building ------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        chunks: Iterable[Chunk],
        directory: Path,
        encoder: Encoder | None,
        stemmer: Stemmer = "english",
        progress: Callable[[int], None] | None = None,
    ) -> EmbeddedBackend:
        """Index ``chunks`` into ``directory``. Without an encoder only BM25 is built."""
        import bm25s

        rows = list(chunks)
        if not rows:
            raise BackendError("the corpus is empty: nothing to index")
        seen: set[str] = set()
        for chunk in rows:
            if chunk.chunk_id in seen:
                raise BackendError(f"duplicate chunk id {chunk.chunk_id!r} in the corpus")
            seen.add(chunk.chunk_id)
        directory.mkdir(parents=True, exist_ok=True)
        texts = [f"{chunk.title} {chunk.text}".strip() for chunk in rows]
        with (directory / "chunks.jsonl").open("w", encoding="utf-8") as handle:
            for chunk in rows:
                handle.write(chunk.model_dump_json() + "\n")
        tokens = _tokenize(texts, stemmer)
        if not any(tokens):
            raise BackendError("the corpus has no indexable words (only stopwords or symbols)")
        retriever = bm25s.BM25(**BM25_PARAMS)
        retriever.index(tokens, show_progress=False)
        retriever.save(str(directory / "bm25"))
        if encoder is not None:
            vectors = np.zeros((len(rows), encoder.dim), dtype=np.float32)
            step = 256
            for start in range(0, len(rows), step):
                vectors[start : start + step] = encoder.encode(texts[start : start + step])
                if progress:
                    progress(min(step, len(rows) - start))
            np.save(directory / "embeddings.npy", vectors, allow_pickle=False)
        elif (directory / "embeddings.npy").exists():
            (directory / "embeddings.npy").unlink()
        manifest = {
            "format": FORMAT,
            "model_id": encoder.model_id if encoder is not None else None,
            "chunk_count": len(rows),
            "document_count": len({chunk.doc_id for chunk in rows}),
            "content_hash": content_hash(rows),
            "bm25": {**BM25_PARAMS, "stemmer": stemmer, "stopwords": "en", "fields": "title+text"},
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return cls(directory, encoder)

    @classmethod
    def open(cls, directory: Path, encoder: Encoder | None) -> EmbeddedBackend:
        return cls(directory, encoder)

    # searching -----------------------------------------------------------------------
    def search_many(self, queries: Sequence[str], mode: Mode, depth: int) -> list[SearchResult]:
        """bm25 scores query by query, so each gets its own time; the vector modes encode
        and score a batch at once, so theirs is unknown (None), never a batch's share."""
        if mode == "bm25":
            timed = self._bm25_timed(queries, depth)
            return [SearchResult(hits=hits, latency_ms=ms) for hits, ms in timed]
        if mode in ("dense", "exact"):
            rankings = self._dense_rankings(queries, depth)
        elif mode == "hybrid":
            lexical = self._bm25_rankings(queries, depth)
            dense = self._dense_rankings(queries, depth)
            rankings = [fuse_rrf([a, b], depth) for a, b in zip(lexical, dense, strict=True)]
        else:
            raise BackendError(
                f"mode {mode!r} needs Elasticsearch; the embedded index has bm25, dense, "
                "hybrid and exact"
            )
        return [SearchResult(hits=hits) for hits in rankings]

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> HitList:
        """The ranked rows as columns (no object per hit: see :class:`HitList`)."""
        return HitList(self._chunk_ids[rows], self._doc_ids[rows], scores[rows])

    def _bm25_rankings(self, queries: Sequence[str], depth: int) -> list[Sequence[Hit]]:
        return [hits for hits, _ in self._bm25_timed(queries, depth)]

    def _bm25_timed(self, queries: Sequence[str], depth: int
                    ) -> list[tuple[Sequence[Hit], float]]:
        """Each query's hits and the milliseconds it took to score and rank (tokenizing is
        done for the batch at once, and is a small part)."""
        retriever = self._load_bm25()
        tokenized = _tokenize(list(queries), self.manifest["bm25"]["stemmer"])
        rankings = []
        for tokens in tokenized:
            started = time.perf_counter()
            ids = retriever.get_tokens_ids(tokens)
            hits: Sequence[Hit] = []
            if ids:
                scores = retriever.get_scores_from_ids(ids)
                hits = self._hits(top_k(scores, self.id_order, depth, floor=0.0), scores)
            rankings.append((hits, (time.perf_counter() - started) * 1000.0))
        return rankings

    def _dense_rankings(self, queries: Sequence[str], depth: int) -> list[Sequence[Hit]]:
        embeddings = self._load_embeddings()
        encoder = self._require_encoder()
        # One matrix-vector product per query, not one product for the batch: a product's
        # rounding depends on its shape, so a query's scores (and every score-derived
        # evidence) would change in the last bit with the company it is batched in, and a
        # Ray shard would not reproduce the local run
        rows = [embeddings @ vector for vector in encoder.encode(list(queries))]
        return [self._hits(top_k(row, self.id_order, depth, floor=None), row) for row in rows]

    def _load_bm25(self) -> Any:
        if self._bm25 is None:
            import bm25s

            self._bm25 = bm25s.BM25.load(str(self.directory / "bm25"), mmap=False)
        return self._bm25

    def _load_embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            path = self.directory / "embeddings.npy"
            if not path.is_file():
                raise BackendError(
                    f"the index at {self.directory} has no embeddings: rebuild it with an encoder"
                )
            self._embeddings = np.load(path, allow_pickle=False)
        return self._embeddings

    def _require_encoder(self) -> Encoder:
        if self._encoder is None:
            raise BackendError("dense search needs an encoder: set `encoder` in the config")
        if self._encoder.model_id != self.manifest["model_id"]:
            raise BackendError(
                f"the index was embedded with {self.manifest['model_id']}, the encoder is "
                f"{self._encoder.model_id}: rebuild the index or change `encoder`"
            )
        return self._encoder

    # lookups -------------------------------------------------------------------------
    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        found = {}
        for chunk_id in chunk_ids:
            row = self.position.get(chunk_id)
            if row is not None:
                chunk = self.chunks[row]
                found[chunk_id] = {"doc_id": chunk.doc_id, "title": chunk.title, "text": chunk.text}
        return found

    def contains(self, ids: Sequence[str], level: Level) -> list[bool]:
        known = self.doc_ids if level == "doc" else self.position
        return [item in known for item in ids]

    def analyze(self, texts: Sequence[str]) -> list[list[str]]:
        """The BM25 index's own terms: bm25s tokens (lowercased, English stop words out),
        stemmed as at build time."""
        if not texts:
            return []
        return _tokenize(list(texts), self.manifest["bm25"]["stemmer"])

    def doc_chunks(self, doc_ids: Sequence[str]) -> dict[str, list[str]]:
        """Chunk ids by document in (position, chunk id) order; unknown documents absent."""
        if self._doc_chunks is None:
            by_doc: dict[str, list[Chunk]] = {}
            for chunk in self.chunks:
                by_doc.setdefault(chunk.doc_id, []).append(chunk)
            self._doc_chunks = {
                doc: [c.chunk_id for c in sorted(rows, key=lambda c: (c.position, c.chunk_id))]
                for doc, rows in by_doc.items()
            }
        return {doc: list(self._doc_chunks[doc]) for doc in doc_ids if doc in self._doc_chunks}

    def iter_ids(self) -> Iterator[tuple[str, str]]:
        for chunk in self.chunks:
            yield chunk.chunk_id, chunk.doc_id

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            backend=self.name,
            document_count=self.manifest["document_count"],
            chunk_count=self.manifest["chunk_count"],
            content_hash=self.manifest["content_hash"],
            model_id=self.manifest["model_id"] or "",
            params={"bm25": self.manifest["bm25"], "directory": str(self.directory)},
        )
