"""The Ray side of a distributed audit: one actor holds a backend client, an encoder and the
embedding cache's snapshot for its whole life, and runs the local executor's own batch
function (:meth:`auditor.audit.Audit.batch` → :func:`batch_tables`) on the shards the
driver hands it. It never opens the results store: the driver is its only writer.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.audit import Audit
from auditor.config import AuditSettings
from auditor.metrics.per_query import batch_tables
from auditor.records import LogRecord
from auditor.run_record import RunCounts
from auditor.store import ABLATION_HITS

RECENT_VECTORS = 50_000  # vectors a worker keeps of its own (≈75 MB at 384 floats)


@dataclass
class Shard:
    """Accepted records of one hash bucket, with their places in the log (``seqs``) and
    their judgments from the qrels file (only theirs: memory stays one shard)."""

    index: int
    seqs: list[int]
    records: list[LogRecord]
    judgments: dict[str, dict[str, int]]
    abort_reason: str | None = None  # the index gave up on another worker: send nothing


@dataclass
class ShardResult:
    """What the driver stores for a shard, and the counts it adds to the run's."""

    index: int
    tables: dict[str, pa.Table]
    counts: dict[str, Any]  # RunCounts of this shard alone (replayed, traced, by_status)
    cache: dict[str, int] = field(default_factory=dict)  # lookups, hits, encoded
    fault: str | None = None
    abort_reason: str | None = None
    pid: int = 0


class SnapshotCache:
    """The store's embedding cache as the driver exported it when the run started (one
    Arrow table in Ray's object store, shared by the actors of a node), plus the vectors
    this worker encoded since (the newest ``RECENT_VECTORS``). What the worker encodes
    goes back to the driver with each shard, which writes it once."""

    def __init__(self, snapshot: pa.Table, recent: int = RECENT_VECTORS) -> None:
        keys = snapshot.column("key").to_pylist()
        self._row = {key: i for i, key in enumerate(keys)}
        self._matrix = vectors(snapshot)
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = recent

    def embeddings(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors by key, as :meth:`auditor.store.Store.embeddings` answers."""
        found: dict[str, np.ndarray] = {}
        for key in keys:
            if key in self._row:
                found[key] = self._matrix[self._row[key]]
            elif key in self._recent:
                found[key] = self._recent[key]
        return found

    def remember(self, table: pa.Table | None) -> None:
        if table is None or not table.num_rows:
            return
        for key, vector in zip(table.column("key").to_pylist(), vectors(table), strict=True):
            self._recent[key] = vector
        while len(self._recent) > self._limit:
            self._recent.popitem(last=False)


def vectors(table: pa.Table) -> np.ndarray:
    """The ``vector`` column as a float32 matrix (a view where Arrow allows)."""
    if not table.num_rows:
        return np.zeros((0, 0), dtype=np.float32)
    column = table.column("vector").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(table.num_rows, -1)


class ShardWorker:
    """One Ray actor: opens the backend and the encoder once, then audits shards."""

    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings
        self.cache: SnapshotCache | None = None
        self.audit: Audit | None = None

    def _open(self, snapshot: list[Any]) -> Audit:
        """The backend, the encoder and the cache snapshot, on the first shard (again after
        Ray restarted the actor). ``snapshot`` is [its object ref]: each node fetches it once
        from the driver's object store."""
        if self.audit is None:
            import ray

            self.cache = SnapshotCache(ray.get(snapshot[0]))
            # the judgments come with each shard; the qrels file is the driver's to read
            self.audit = Audit(self.settings.model_copy(update={"qrels": None}),
                               cache=self.cache)
        return self.audit

    def pid(self) -> int:
        return os.getpid()

    def run(self, run_id: str, shard: Shard, snapshot: list[Any]) -> ShardResult:
        audit = self._open(snapshot)
        audit.judgments = shard.judgments
        if shard.abort_reason and audit.replayer.abort_reason is None:
            audit.replayer.abort_reason = shard.abort_reason
        before = self._stats()
        result = audit.batch(0, shard.records)  # seq = place in the shard, mapped below
        tables = batch_tables(run_id, result, self.settings)
        for name in ("query_results", "hits", ABLATION_HITS):
            tables[name] = with_seqs(tables[name], shard.seqs)
        embeddings = audit.new_embeddings()
        assert self.cache is not None
        self.cache.remember(embeddings)
        if embeddings is not None:
            tables["embeddings"] = embeddings
        after = self._stats()
        return ShardResult(
            index=shard.index, tables=tables, counts=asdict(RunCounts().after(result)),
            cache={k: after[k] - before[k] for k in after}, fault=audit.replayer.fault,
            abort_reason=audit.replayer.abort_reason, pid=os.getpid())

    def _stats(self) -> dict[str, int]:
        encoder = self.audit.encoder if self.audit is not None else None
        if encoder is None:
            return {}
        stats = encoder.stats
        return {"lookups": stats.lookups, "hits": stats.hits, "encoded": stats.encoded}


def with_seqs(table: pa.Table, seqs: list[int]) -> pa.Table:
    """Replace a table's shard positions (``seq`` 0..n-1) by the records' places in the
    log, so a shard's rows read exactly as the local executor's."""
    if "seq" not in table.column_names or not table.num_rows:
        return table
    where = table.column_names.index("seq")
    places = pc.take(pa.array(seqs, pa.int64()), table.column("seq"))
    return table.set_column(where, "seq", places)
