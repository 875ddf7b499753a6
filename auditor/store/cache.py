"""The embedding cache: vectors by key, kept in the store so reruns do not embed again.

Vectors are written through :meth:`Writer.append` (the ``embeddings`` table is keyed, so a
vector already cached is skipped).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from auditor.store.connection import Connection


class EmbeddingCache(Connection):
    """The cache's read path of :class:`auditor.store.Store`."""

    def embeddings(self, keys: list[str]) -> dict[str, Any]:
        """Cached vectors by key (numpy float32 rows); absent keys are left out."""
        if not keys or not self.path.exists():
            return {}
        with self.connect() as con:
            con.register("wanted", pa.table({"key": pa.array(keys, pa.string())}))
            found = con.sql(
                "SELECT e.key, e.vector FROM embeddings e JOIN wanted USING (key)").to_arrow_table()
        if not found.num_rows:
            return {}
        import numpy as np

        column = found.column("vector").combine_chunks()
        width = len(column[0])
        matrix = column.flatten().to_numpy().astype(np.float32).reshape(-1, width)
        return dict(zip(found.column("key").to_pylist(), matrix, strict=True))

    def cached_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` the cache holds, read only and without their vectors (the dry
        run counts what a run would embed); none when there is no store yet."""
        if not keys or not self.path.exists():
            return set()
        with self.connect(read_only=True) as con:
            con.register("wanted", pa.table({"key": pa.array(keys, pa.string())}))
            found = con.sql("SELECT key FROM embeddings JOIN wanted USING (key)").fetchall()
        return {key for (key,) in found}

    def embedding_snapshot(self, model: str) -> pa.Table:
        """Every cached vector of ``model`` (``key``, ``vector``, by key): a Ray run's
        workers read this from Ray's object store, since only the driver opens the file."""
        with self.connect(read_only=True) as con:
            return con.sql("SELECT key, vector FROM embeddings WHERE model = $model "
                           "ORDER BY key", params={"model": model}).to_arrow_table()
