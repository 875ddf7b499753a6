"""Opening the DuckDB results store file.

A DuckDB file is open read-write by one process or read-only by many, never both, so the
writer opens a connection per short transaction and closes it at once; readers (CLI,
dashboard) open read-only connections. Whoever finds the file held by another process waits
and tries again (with jittered backoff, up to ``busy_timeout_s``, 30 s by default): two runs
on one store both finish, and a dashboard read during a run waits a few milliseconds
instead of failing.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from auditor.store.schema import StoreError, migrate, pending

BUSY_TIMEOUT_S = 30.0  # how long anyone waits for a file another process holds
BUSY_ENV = "AUDITOR_BUSY_TIMEOUT_S"
SCAN_MEMORY = "64MB"  # DuckDB's budget for whole-run scans (the corpus pass); it spills
# One connection at a time per process: DuckDB connections to one file opened from several
# threads at once race on registering Arrow scans ("python_arrow_scan does not exist"); the
# Elasticsearch backend's worker threads each look up cached embeddings.
_IN_PROCESS = threading.RLock()
# Files held open by :meth:`Connection.held` (resolved path → its read-write connection).
_HELD: dict[Path, duckdb.DuckDBPyConnection] = {}


__all__ = ["StoreError"]  # defined with the schema, which refuses newer stores


class Connection:
    """Holds the file's path and opens connections to it; the store's parts build on it."""

    def __init__(self, path: Path, busy_timeout_s: float | None = None) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s if busy_timeout_s is not None else float(
            os.environ.get(BUSY_ENV) or BUSY_TIMEOUT_S)

    @contextmanager
    def bounded(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for scans over a whole run (every stored hit): DuckDB may
        use ``SCAN_MEMORY`` and spills the rest to a temporary directory, so memory stays
        flat however many queries the run has (by default it may take 80% of the RAM)."""
        with tempfile.TemporaryDirectory(prefix="auditor-spill-") as spill, \
                self.connect(read_only=True) as con:
            con.execute(f"SET temp_directory = '{spill}'")
            con.execute(f"SET memory_limit = '{SCAN_MEMORY}'")
            con.execute("SET preserve_insertion_order = false")
            con.execute("SET threads = 1")  # each thread would hold its own hash tables
            try:
                yield con
            finally:
                con.execute("RESET memory_limit")
                con.execute("RESET threads")

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open read-write for a burst of short calls (the end of a run: the
        corpus pass, manifest, verdict and reports): each ``connect`` inside takes a cursor
        on it (≈0.2 ms) instead of opening the file and checkpointing it on close (≈20 ms
        CPU, some 40 times). Other processes wait meanwhile, as during a flush; held once
        per file (an inner ``held`` changes nothing)."""
        key = self.path.resolve()
        with _IN_PROCESS:
            if key in _HELD:
                con = None
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con = _HELD[key] = self._open(read_only=False)
        if con is None:
            yield
            return
        try:
            with _IN_PROCESS:
                con.execute("SET threads = 1")
                migrate(con, self.path)
            yield
        finally:
            with _IN_PROCESS:
                del _HELD[key]
                con.close()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise StoreError(f"no results store at {self.path}: run `auditor run` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with _IN_PROCESS:
            if _HELD and self.path.resolve() in _HELD:
                cursor = _HELD[self.path.resolve()].cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
                return
            con = self._open(read_only)
            try:
                if not read_only:
                    # One thread: an insert's CPU time was 1.5x that on two threads (Arrow
                    # scan and compression split into tasks), for a transaction of <1 s
                    con.execute("SET threads = 1")
                    migrate(con, self.path)
                elif pending(con, self.path):  # an older store: readers upgrade it too
                    con.close()
                    self.ensure_current()
                    con = self._open(read_only)
                yield con
            finally:
                con.close()

    def ensure_current(self) -> list[str]:
        """Bring the file to this auditor's schema (``auditor migrate``; readers call it on
        an older store); returns the migrations applied. A file that cannot be written
        here gets one sentence instead of a DuckDB catalog error later."""
        if not self.path.exists():
            raise StoreError(f"no results store at {self.path}: run `auditor run` first")
        if not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
            raise StoreError(f"the results store {self.path} was written by an older auditor "
                             "and is read-only here: run `auditor migrate --store "
                             f"{self.path}` where it is writable")
        with _IN_PROCESS:
            try:
                con = self._open(read_only=False)
            except StoreError as exc:
                raise StoreError(f"the results store {self.path} was written by an older "
                                 f"auditor and cannot be upgraded now: {exc}") from None
            try:
                return migrate(con, self.path)
            finally:
                con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another process holds it. Writers hold it for one
        short transaction and readers for one query, so the wait is usually milliseconds;
        after ``busy_timeout_s`` the error says what to do."""
        deadline = time.monotonic() + self.busy_timeout_s
        attempt = 0
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the results store {self.path} is busy or unreadable ({exc}): "
                        "wait for the running audit to finish and try again"
                    ) from None
            pause = min(0.02 * 2**attempt, 0.5) * (0.5 + random.random())
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            attempt += 1


def dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
