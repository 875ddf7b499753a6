"""Writing runs: a run's row, its batches of Arrow rows, checkpoints, verdicts.

Bulk rows go in as Arrow tables (≈3.4M rows/s here, 2,000x faster than ``executemany``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from auditor.owners import current_owner, describe, is_alive
from auditor.store.connection import Connection, StoreError

# "interrupted" is never stored: it is how a "running" run whose process is gone is shown.
RunStatus = Literal["running", "complete", "partial", "failed", "interrupted"]
# Tables with a primary key: rows already stored are skipped, not an error.
KEYED_TABLES = frozenset({"embeddings", "passages"})
# A run's batches are written together once this many rows or seconds have gathered.
FLUSH_ROWS = 300_000
FLUSH_SECONDS = 10.0


class Pending:
    """Batches' tables waiting to be appended in one transaction.

    Why: every transaction opens the file (≈20 ms CPU) and checkpoints it on close (≈50 ms);
    once per batch of 128 bm25 queries that was 2-3x the search itself (bench/scale.py).
    DuckDB also writes an insert of a row group or more (122,880 rows) straight to the
    file, so 1M hits cost ≈0.5 CPU-s in one transaction and twice that in eight.

    The file is held only while a flush runs (≈0.5 s for 1M rows): a writer that kept its
    connection for the whole run would lock every reader (dashboard, ``auditor runs``) out,
    since DuckDB lets one process open a file read-write and no other open it then. Between
    flushes readers get in at once; during one they wait (``Connection._open``). So flushes
    are few and large: ``rows`` rows (≈2,000 queries at depth 100; 1M rows would save ≈4% of
    a 10k run's CPU but hold ≈100 MB more: peak memory stays flat in the run's size)
    or ``seconds`` since the last one (what the dashboard shows lags by that much at most).
    The caller writes them with the last batch's checkpoint, so a killed run still holds
    whole batches and matching counts.
    """

    def __init__(self, rows: int = FLUSH_ROWS, seconds: float = FLUSH_SECONDS) -> None:
        self.rows, self.seconds = rows, seconds
        self.tables: dict[str, list[pa.Table]] = {}
        self.held = 0
        self.since = time.monotonic()

    def add(self, tables: dict[str, pa.Table | None]) -> None:
        for name, table in tables.items():
            if table is not None and table.num_rows:
                self.tables.setdefault(name, []).append(table)
                self.held += table.num_rows

    def has(self, name: str) -> bool:
        return name in self.tables

    def due(self) -> bool:
        return self.held >= self.rows or time.monotonic() - self.since >= self.seconds

    def take(self) -> dict[str, pa.Table]:
        """The gathered rows, one table per name (a column that was all null in one batch
        takes the type it has in the others)."""
        tables = {name: pa.concat_tables(parts, promote_options="permissive")
                  if len(parts) > 1 else parts[0] for name, parts in self.tables.items()}
        self.tables, self.held, self.since = {}, 0, time.monotonic()
        return tables


class Writer(Connection):
    """The write paths of :class:`auditor.store.Store`."""

    def create_run(
        self,
        run_id: str,
        *,
        backend: str,
        mode: str,
        level: str,
        config: dict[str, Any],
        fingerprint: dict[str, Any],
        code_version: str,
    ) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, started_at, status, backend, mode, level, config, "
                "fingerprint, code_version, owner) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id, datetime.now(UTC), backend, mode, level,
                    json.dumps(config), json.dumps(fingerprint), code_version,
                    json.dumps(current_owner()),
                ],
            )

    def append(self, tables: dict[str, pa.Table | None], checkpoint: tuple[str, dict] | None = None
               ) -> None:
        """Append Arrow tables (table name → rows) in one short transaction.

        ``checkpoint`` (run id, counts) is written in the same transaction: a run killed at
        any moment holds whole batches and counts that match them, so it can resume.
        Rows whose primary key is already stored (cached embeddings) are skipped.
        """
        with self.connect() as con:
            con.execute("BEGIN")
            for name, table in tables.items():
                if table is not None and table.num_rows:
                    con.register("incoming", table)
                    columns = ", ".join(table.column_names)
                    ignore = " OR IGNORE" if name in KEYED_TABLES else ""
                    con.execute(f"INSERT{ignore} INTO {name} ({columns}) "
                                f"SELECT {columns} FROM incoming")
                    con.unregister("incoming")
            if checkpoint is not None:
                run_id, counts = checkpoint
                con.execute("UPDATE runs SET counts = ? WHERE run_id = ?",
                            [json.dumps(counts), run_id])
            con.execute("COMMIT")

    def finish_run(
        self, run_id: str, status: RunStatus, reason: str | None, counts: dict[str, Any]
    ) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, status_reason = ?, counts = ? "
                "WHERE run_id = ?",
                [datetime.now(UTC), status, reason, json.dumps(counts), run_id],
            )

    def reopen_run(self, run_id: str) -> None:
        """Mark an unfinished run running again, owned by this process; the corpus pass is
        redone from scratch. Refused while the run's owner process is alive (checked inside
        the write transaction, so two resumes cannot both take the run)."""
        with self.connect() as con:
            con.execute("BEGIN")
            row = con.execute("SELECT status, owner FROM runs WHERE run_id = ?",
                              [run_id]).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                raise StoreError(f"no run {run_id!r} in {self.path}: list runs with "
                                 "`auditor runs`")
            refusal = resume_refusal(run_id, row[0], json.loads(row[1]) if row[1] else None)
            if refusal:
                con.execute("ROLLBACK")
                raise StoreError(refusal)
            con.execute("UPDATE runs SET status = 'running', finished_at = NULL, "
                        "status_reason = NULL, owner = ? WHERE run_id = ?",
                        [json.dumps(current_owner()), run_id])
            con.execute("DELETE FROM corpus_coverage WHERE run_id = ?", [run_id])
            con.execute("COMMIT")

    def set_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute("UPDATE runs SET manifest = ? WHERE run_id = ?",
                        [json.dumps(manifest, default=str), run_id])

    def record_gates(self, run_id: str, baseline_run_id: str | None, gates: pa.Table,
                     comparison: pa.Table | None, *, baseline_reason: str | None = None,
                     warnings: list[str] | None = None) -> int:
        """A run's verdict: its gate rows, the comparison rows and the overall gate status
        (the latest verdict), plus one more row in the verdict history. Returns the
        verdict's number on this run (1 for the first)."""
        from auditor.records import overall

        statuses = gates.column("status").to_pylist() if "status" in gates.column_names \
            else ["passed" if p else "failed" for p in gates.column("passed").to_pylist()]
        status = overall(statuses)
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM gates WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM comparisons WHERE run_id = ?", [run_id])
            con.execute(
                "UPDATE runs SET baseline_run_id = ?, gate_status = ? WHERE run_id = ?",
                [baseline_run_id, status, run_id],
            )
            for name, table in (("gates", gates), ("comparisons", comparison)):
                if table is not None and table.num_rows:
                    con.register("incoming", table)
                    columns = ", ".join(table.column_names)
                    con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM incoming")
                    con.unregister("incoming")
            number = con.execute("SELECT coalesce(max(verdict_id), 0) + 1 FROM verdicts "
                                 "WHERE run_id = ?", [run_id]).fetchone()[0]
            con.execute(
                "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, number, datetime.now(UTC), status, baseline_run_id, baseline_reason,
                 json.dumps(warnings or []),
                 json.dumps(gates.drop_columns(["run_id"]).to_pylist(), default=str)])
            con.execute("COMMIT")
        return number


def resume_refusal(run_id: str, status: str, owner: dict[str, Any] | None) -> str | None:
    """Why run ``run_id`` may not be resumed now, or None."""
    if status == "complete":
        return f"run {run_id} is already complete: there is nothing to resume"
    if status == "running" and is_alive(owner):
        return (f"run {run_id} is still running in {describe(owner)}: wait for it to end "
                "(or stop it) before resuming")
    return None

