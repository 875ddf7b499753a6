"""Replay: send logged queries to a backend in batches; one result row per query, always.

A row's status is ``ok`` (hits came back), ``empty`` (the backend answered with none) or
``error`` (with the reason). A batch the backend cannot answer at all marks each of its
queries ``error``; after ``MAX_FAILED_BATCHES`` such batches in a row the index is taken to
be down and the remaining queries are marked ``error`` without being sent.

A row's latency is the backend's own figure for that query (Elasticsearch's ``took`` of its
sub-search, the embedded index's time for it), or None where the backend answers a batch at
once: a batch's time divided by its size would give every query the same made-up number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Literal, TypeVar

from auditor.backends import Backend, BackendError
from auditor.records import Hit, LogRecord, Mode

Status = Literal["ok", "empty", "error"]
MAX_FAILED_BATCHES = 3
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Replayed:
    record: LogRecord
    status: Status
    hits: Sequence[Hit]
    replay_latency_ms: float | None
    took_ms: float | None = None
    error: str | None = None


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Replayer:
    """Replays batches; remembers whether the backend looks down."""

    def __init__(self, backend: Backend, mode: Mode, depth: int) -> None:
        self.backend = backend
        self.mode = mode
        self.depth = depth
        self.failed_in_a_row = 0
        self.abort_reason: str | None = None
        self.fault: str | None = None  # the last reason a whole batch failed

    def replay(self, batch: list[LogRecord]) -> list[Replayed]:
        if self.abort_reason is not None:
            return [_failed(record, f"not sent: {self.abort_reason}") for record in batch]
        try:
            results = self.backend.search_many([r.query for r in batch], self.mode, self.depth)
        except BackendError as exc:
            return self.lost(batch, str(exc))
        self.failed_in_a_row = 0
        rows = []
        for record, result in zip(batch, results, strict=True):
            if result.error is not None:
                rows.append(_failed(record, result.error))
            else:
                status: Status = "ok" if result.hits else "empty"
                rows.append(Replayed(record, status, result.hits, result.latency_ms,
                                     result.took_ms))
        return rows

    def lost(self, batch: list[LogRecord], reason: str) -> list[Replayed]:
        """The batch as error rows: the backend failed it as a whole (during the replay or
        while its answers were being traced and diagnosed). Counts towards giving up."""
        self.fault = reason
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= MAX_FAILED_BATCHES:
            self.abort_reason = f"{MAX_FAILED_BATCHES} batches failed in a row ({reason})"
        return [_failed(record, reason) for record in batch]


def _failed(record: LogRecord, reason: str) -> Replayed:
    return Replayed(record, "error", [], None, None, reason)
