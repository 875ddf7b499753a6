"""The driver of a Ray run: it reads and validates the log (quarantine as a local run),
shards the accepted records by a hash of ``query_id``, keeps a bounded number of shards in
flight on a pool of :class:`ShardWorker` actors and is the only writer of the store: each
shard's tables are appended as they arrive, with the run's counts as checkpoint, so a
killed driver resumes like a local run. The run-level work (corpus pass, gates, reports)
stays with :func:`auditor.audit.run_audit`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from auditor.audit import Audit, Progress, run_audit
from auditor.backends import Backend
from auditor.config import AuditSettings
from auditor.distributed.cluster import connected
from auditor.distributed.worker import Shard, ShardResult, ShardWorker
from auditor.errors import AuditorError
from auditor.metrics.per_query import quarantine_table
from auditor.records import LogRecord, QuarantineEntry
from auditor.run_record import RunCounts
from auditor.store import RunStatus
from auditor.store.writer import Pending

IN_FLIGHT_PER_WORKER = 2  # shards queued on an actor: one running, one ready (memory flat)
ACTOR_RESTARTS = 2  # Ray restarts a killed actor and retries its shards this many times
SHARD_ATTEMPTS = 3  # then the driver gives the shard to a fresh actor, up to this in all


def run_distributed(settings: AuditSettings, progress: Progress | None = None,
                    backend: Backend | None = None, resume: str | None = None
                    ) -> tuple[str, RunStatus]:
    """:func:`run_audit` with the batches on Ray actors; same run id and status."""
    with connected(settings):
        return run_audit(settings, progress, backend, resume, executor=run_shards)


def bucket(query_id: str, buckets: int) -> int:
    """A query's shard bucket: stable across runs and processes (unlike ``hash``)."""
    digest = hashlib.blake2b(query_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def shards(records: Iterable[LogRecord], skip: set[int], size: int, buckets: int,
           judgments: dict[str, dict[str, int]]) -> Iterator[Shard]:
    """Records grouped by bucket into shards of ``size``; ``seq`` is a record's place among
    the accepted records, as in a local run. ``skip``: places a resumed run has stored."""
    open_: dict[int, tuple[list[int], list[LogRecord]]] = {}
    count = 0

    def shard(seqs: list[int], group: list[LogRecord]) -> Shard:
        nonlocal count
        count += 1
        judged = {r.query_id: judgments[r.query_id] for r in group if r.query_id in judgments}
        return Shard(count - 1, seqs, group, judged)

    for seq, record in enumerate(records):
        if seq in skip:
            continue
        seqs, group = open_.setdefault(bucket(record.query_id, buckets), ([], []))
        seqs.append(seq)
        group.append(record)
        if len(group) >= size:
            yield shard(*open_.pop(bucket(record.query_id, buckets)))
    for key in sorted(open_):
        yield shard(*open_[key])


@dataclass
class _Sent:
    shard: Shard
    slot: int
    attempts: int = 1


class Pool:
    """The actors, and the shards each has in flight."""

    def __init__(self, settings: AuditSettings, snapshot: Any) -> None:
        import ray

        self.remote = ray.remote(num_cpus=1, max_restarts=ACTOR_RESTARTS,
                                 max_task_retries=ACTOR_RESTARTS)(ShardWorker)
        self.settings, self.snapshot = settings, snapshot
        self.actors = [self._actor() for _ in range(settings.workers)]
        self.sent: dict[Any, _Sent] = {}

    def _actor(self) -> Any:
        return self.remote.remote(self.settings)

    def full(self) -> bool:
        return len(self.sent) >= IN_FLIGHT_PER_WORKER * len(self.actors)

    def submit(self, run_id: str, shard: Shard, attempts: int = 1) -> None:
        load = [0] * len(self.actors)
        for sent in self.sent.values():
            load[sent.slot] += 1
        slot = load.index(min(load))
        ref = self.actors[slot].run.remote(run_id, shard, [self.snapshot])
        self.sent[ref] = _Sent(shard, slot, attempts)

    def next_result(self, run_id: str) -> ShardResult | None:
        """The next finished shard; ``None`` when a shard had to go to a fresh actor."""
        import ray
        from ray.exceptions import RayActorError

        ready, _ = ray.wait(list(self.sent), num_returns=1)
        sent = self.sent.pop(ready[0])
        try:
            return ray.get(ready[0])
        except RayActorError as exc:
            if sent.attempts >= SHARD_ATTEMPTS:
                raise AuditorError(f"shard {sent.shard.index} failed on {sent.attempts} Ray "
                                   f"workers; the last died: {exc}") from None
            self.actors[sent.slot] = self._actor()  # Ray gave up restarting this one
            self.submit(run_id, sent.shard, sent.attempts + 1)
            return None

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def run_shards(audit: Audit, run_id: str, records: Iterator[LogRecord], counts: RunCounts,
               quarantined: list[QuarantineEntry], progress: Progress | None) -> None:
    """The executor :func:`run_audit` calls: every accepted record audited on the pool,
    stored once, ``counts`` updated in place."""
    import ray

    settings = audit.settings
    stored = audit.store.stored_seqs(run_id) if counts.replayed else set()
    model = audit.encoder.model_id if audit.encoder is not None else ""
    pool = Pool(settings, ray.put(audit.store.embedding_snapshot(model)))
    # Shards' tables are gathered and written as a local run's batches are (every
    # FLUSH_ROWS rows or flush_seconds): a file open, checkpoint and close per shard was
    # two thirds of the driver's CPU on a 20k-query night
    pending = Pending(seconds=settings.flush_seconds)
    abort: str | None = None
    try:
        for shard in shards(records, stored, settings.batch_size, settings.workers,
                            audit.judgments):
            while pool.full():
                abort = _gather(audit, run_id, pool.next_result(run_id), counts, quarantined,
                                pending, progress) or abort
            shard.abort_reason = abort
            pool.submit(run_id, shard)
        while pool.sent:
            _gather(audit, run_id, pool.next_result(run_id), counts, quarantined, pending,
                    progress)
    finally:
        pool.close()
        # what was gathered is whole shards with the counts after them: keep it
        _flush(audit, run_id, counts, quarantined, pending)


def _gather(audit: Audit, run_id: str, result: ShardResult | None, counts: RunCounts,
            quarantined: list[QuarantineEntry], pending: Pending,
            progress: Progress | None) -> str | None:
    """Add one shard's tables to ``pending`` (written when due, with the run's counts after
    them as checkpoint) and its counts to the run's; returns why the index was given up,
    if a worker did."""
    if result is None:
        return None
    pending.add(result.tables)
    _add(counts, result.counts)
    if audit.encoder is not None:
        stats = audit.encoder.stats
        stats.lookups += result.cache.get("lookups", 0)
        stats.hits += result.cache.get("hits", 0)
        stats.encoded += result.cache.get("encoded", 0)
        counts.embedding_cache = stats.as_dict()
    if pending.due():
        _flush(audit, run_id, counts, quarantined, pending)
    replayer = audit.replayer
    replayer.fault = result.fault or replayer.fault
    replayer.abort_reason = replayer.abort_reason or result.abort_reason
    if progress:
        progress(result.counts["replayed"])
    return replayer.abort_reason


def _flush(audit: Audit, run_id: str, counts: RunCounts, quarantined: list[QuarantineEntry],
           pending: Pending) -> None:
    """Write the gathered shards and the quarantine read since, with the counts after them,
    in one transaction."""
    pending.add({"quarantine": quarantine_table(run_id, quarantined)})
    audit.store.append(pending.take(), checkpoint=(run_id, asdict(counts)))
    quarantined.clear()


def _add(counts: RunCounts, shard: dict[str, Any]) -> None:
    counts.replayed += shard["replayed"]
    counts.traced += shard["traced"]
    for status, n in shard["by_status"].items():
        counts.by_status[status] = counts.by_status.get(status, 0) + n
