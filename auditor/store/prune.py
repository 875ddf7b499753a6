"""Pruning old runs' hits: the store keeps years of nights in bounded space.

At a million queries a night the ``hits`` table grows by ``store_depth`` rows per query; every
other per-query table grows by a handful. ``auditor prune --keep-hits-days N`` drops the hits
of finished runs started more than N days ago and keeps the rest forever (run records,
per-query results and metrics, sentences, support, causes, verdicts). Each pruned run is
recorded in ``pruned_hits``, so readers say "hits pruned" instead of "no hits".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from auditor.store.connection import Connection, StoreError
from auditor.store.schema import migration


@migration
def m011_pruned_hits(con: duckdb.DuckDBPyConnection) -> None:
    """One row per run whose hits were pruned: when, and how many rows went."""
    con.execute("CREATE TABLE pruned_hits (run_id VARCHAR PRIMARY KEY, "
                "pruned_at TIMESTAMPTZ NOT NULL, rows BIGINT NOT NULL)")


@dataclass(frozen=True)
class PrunedRun:
    """One run whose per-hit rows were dropped."""

    run_id: str
    started_at: datetime
    rows: int


class HitsPruning(Connection):
    """The pruning path of :class:`auditor.store.Store`."""

    def prune_hits(self, keep_days: int, now: datetime | None = None) -> list[PrunedRun]:
        """Drop the hits of every finished run started before ``now - keep_days``, in one
        transaction, and record each run in ``pruned_hits``; returns the runs pruned now (a
        run pruned before, or with no hits stored, is left out). Only complete and failed runs
        are pruned: one running, partial or interrupted may still be resumed."""
        if not self.path.exists():
            raise StoreError(f"no results store at {self.path}: nothing to prune")
        cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
        with self.connect() as con:
            con.execute("BEGIN")
            found = con.execute(
                "SELECT r.run_id, r.started_at, count(h.run_id) AS n FROM runs r "
                "JOIN hits h USING (run_id) WHERE r.started_at < $cutoff "
                "AND r.status IN ('complete', 'failed') "
                "GROUP BY ALL ORDER BY r.started_at, r.run_id",
                {"cutoff": cutoff}).fetchall()
            pruned = [PrunedRun(run_id, started, rows) for run_id, started, rows in found]
            if pruned:
                ids = [run.run_id for run in pruned]
                con.execute("DELETE FROM hits WHERE list_contains($ids, run_id)", {"ids": ids})
                con.executemany(
                    "INSERT INTO pruned_hits VALUES (?, ?, ?) ON CONFLICT (run_id) DO UPDATE "
                    "SET pruned_at = excluded.pruned_at, rows = pruned_hits.rows + excluded.rows",
                    [[run.run_id, datetime.now(UTC), run.rows] for run in pruned])
            con.execute("COMMIT")
            if pruned:
                con.execute("CHECKPOINT")  # give the freed blocks back to the file now
        return pruned

    def hits_pruned(self, run_id: str) -> bool:
        """Whether ``auditor prune`` dropped this run's hits (readers say so, not "none")."""
        if not self.path.exists():
            return False
        with self.connect(read_only=True) as con:
            try:
                row = con.execute("SELECT 1 FROM pruned_hits WHERE run_id = ?",
                                  [run_id]).fetchone()
            except duckdb.CatalogException:  # a read-only file not migrated yet
                return False
        return row is not None
