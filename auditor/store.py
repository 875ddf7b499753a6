"""The DuckDB results store: every run, its per-query rows, hits, metrics and quarantine.

A DuckDB file is open read-write by one process or read-only by many, never both, so the
writer opens a connection per short transaction and closes it at once; readers (CLI,
dashboard) open read-only connections. Bulk rows go in as Arrow tables (≈3.4M rows/s
here, 2,000x faster than ``executemany``).

Schema changes are ordered migrations ``m001_...``; a merged migration is never edited.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

RunStatus = Literal["running", "complete", "partial", "failed"]
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []


class StoreError(Exception):
    """The store cannot be opened or read; the message says what to do."""


def migration(func: Callable[[duckdb.DuckDBPyConnection], None]) -> Callable:
    MIGRATIONS.append(func)
    return func


@migration
def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,
            status_reason VARCHAR,
            backend VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            level VARCHAR NOT NULL,
            config JSON NOT NULL,
            fingerprint JSON NOT NULL,
            code_version VARCHAR NOT NULL,
            counts JSON
        );
        CREATE TABLE query_results (
            run_id VARCHAR NOT NULL,
            seq BIGINT NOT NULL,
            query_id VARCHAR NOT NULL,
            query VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            error VARCHAR,
            n_hits INTEGER NOT NULL,
            latency_ms DOUBLE,
            took_ms DOUBLE,
            logged_at TIMESTAMPTZ,
            served_latency_ms DOUBLE,
            served JSON,
            answer VARCHAR,
            cited JSON,
            metadata JSON
        );
        CREATE TABLE hits (
            run_id VARCHAR NOT NULL,
            seq BIGINT NOT NULL,
            query_id VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            chunk_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        );
        CREATE TABLE judgments (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            relevance INTEGER NOT NULL
        );
        CREATE TABLE metrics (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE
        );
        CREATE TABLE quarantine (
            run_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            line BIGINT NOT NULL,
            field VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            raw VARCHAR
        );
        """
    )


@migration
def m002_evidence(con: duckdb.DuckDBPyConnection) -> None:
    """Answer traces, diagnoses and corpus coverage (the diagnosis issue)."""
    con.execute(
        """
        CREATE TABLE sentences (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            text VARCHAR NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            status VARCHAR NOT NULL,
            served_score DOUBLE,
            replayed_rank INTEGER,
            best_chunk_id VARCHAR,
            best_doc_id VARCHAR,
            best_score DOUBLE NOT NULL,
            composite BOOLEAN NOT NULL
        );
        CREATE TABLE support (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            origin VARCHAR NOT NULL,
            chunk_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            rank INTEGER,
            score DOUBLE NOT NULL
        );
        CREATE TABLE diagnoses (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            cause VARCHAR NOT NULL,
            target_id VARCHAR,
            evidence JSON NOT NULL
        );
        CREATE TABLE scatter (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            level VARCHAR NOT NULL,
            size INTEGER,
            approx BOOLEAN NOT NULL,
            sources JSON NOT NULL
        );
        CREATE TABLE corpus_coverage (
            run_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            title VARCHAR,
            retrieved_at_k INTEGER NOT NULL,
            retrieved_at_depth INTEGER NOT NULL,
            best_rank INTEGER,
            self_rank INTEGER,
            reachable BOOLEAN
        );
        """
    )


class Store:
    """One DuckDB file. Cheap to create: it holds a path, not a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise StoreError(f"no results store at {self.path}: run `auditor run` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise StoreError(
                f"the results store {self.path} is busy or unreadable ({exc}): "
                "wait for the running audit to finish and try again"
            ) from None
        try:
            if not read_only:
                self._migrate(con)
            yield con
        finally:
            con.close()

    @staticmethod
    def _migrate(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)"
        )
        done = con.execute("SELECT version FROM schema_migrations").fetchall()
        applied = {row[0] for row in done}
        for version, func in enumerate(MIGRATIONS, start=1):
            if version in applied:
                continue
            con.execute("BEGIN")
            func(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [version, func.__name__, datetime.now(UTC)],
            )
            con.execute("COMMIT")

    # writing -------------------------------------------------------------------------
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
                "fingerprint, code_version) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                [
                    run_id, datetime.now(UTC), backend, mode, level,
                    json.dumps(config), json.dumps(fingerprint), code_version,
                ],
            )

    def append(self, tables: dict[str, pa.Table]) -> None:
        """Append Arrow tables (table name → rows) in one short transaction."""
        with self.connect() as con:
            con.execute("BEGIN")
            for name, table in tables.items():
                if table.num_rows:
                    con.register("incoming", table)
                    columns = ", ".join(table.column_names)
                    con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM incoming")
                    con.unregister("incoming")
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

    # reading -------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        with self.connect(read_only=True) as con:
            return _dicts(
                con.execute(
                    "SELECT run_id, started_at, finished_at, status, status_reason, backend, "
                    "mode, level, counts FROM runs ORDER BY started_at DESC"
                )
            )

    def run(self, run_id: str) -> dict[str, Any]:
        with self.connect(read_only=True) as con:
            rows = _dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.path}: list runs with `auditor runs`")
        row = rows[0]
        for key in ("config", "fingerprint", "counts"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def metric_means(self, run_id: str) -> list[dict[str, Any]]:
        """Mean and n of every metric; n counts the queries where the value is defined."""
        with self.connect(read_only=True) as con:
            return _dicts(
                con.execute(
                    "SELECT metric, avg(value) AS mean, count(value) AS n, "
                    "count(*) - count(value) AS undefined FROM metrics WHERE run_id = ? "
                    "GROUP BY metric ORDER BY split_part(metric, '@', 1), "
                    "TRY_CAST(split_part(metric, '@', 2) AS INTEGER) NULLS FIRST",
                    [run_id],
                )
            )

    def cause_counts(self, run_id: str) -> list[dict[str, Any]]:
        """Queries per cause, with the share of replayed queries."""
        with self.connect(read_only=True) as con:
            return _dicts(con.execute(
                "SELECT cause, count(DISTINCT query_id) AS queries, count(DISTINCT query_id) / "
                "(SELECT count(*) FROM query_results WHERE run_id = $1) AS share "
                "FROM diagnoses WHERE run_id = $1 GROUP BY cause ORDER BY queries DESC, cause",
                [run_id],
            ))

    def sentence_counts(self, run_id: str) -> dict[str, int]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT status, count(*) FROM sentences WHERE run_id = ? GROUP BY status",
                [run_id],
            ).fetchall()
        return dict(rows)

    def latest_run_with(self, query_id: str) -> str:
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT r.run_id FROM runs r JOIN query_results q USING (run_id) "
                "WHERE q.query_id = ? ORDER BY r.started_at DESC LIMIT 1", [query_id],
            ).fetchone()
        if row is None:
            raise StoreError(f"no run in {self.path} holds query {query_id!r}")
        return row[0]

    def query_trace(self, run_id: str, query_id: str) -> dict[str, Any]:
        """Everything stored about one query of one run: result, sentences, support, causes."""
        with self.connect(read_only=True) as con:
            result = _dicts(con.execute(
                "SELECT * FROM query_results WHERE run_id = ? AND query_id = ?",
                [run_id, query_id]))
            if not result:
                raise StoreError(f"query {query_id!r} is not in run {run_id}")
            args = [run_id, query_id]
            return {
                "result": result[0],
                "hits": _dicts(con.execute(
                    "SELECT rank, chunk_id, doc_id, score FROM hits WHERE run_id = ? AND "
                    "query_id = ? ORDER BY rank LIMIT 20", args)),
                "sentences": _dicts(con.execute(
                    "SELECT * FROM sentences WHERE run_id = ? AND query_id = ? ORDER BY idx",
                    args)),
                "support": _dicts(con.execute(
                    "SELECT idx, origin, chunk_id, doc_id, rank, score FROM support "
                    "WHERE run_id = ? AND query_id = ? "
                    "ORDER BY idx, origin DESC, score DESC", args)),
                "diagnoses": _dicts(con.execute(
                    "SELECT cause, target_id, evidence FROM diagnoses WHERE run_id = ? AND "
                    "query_id = ? ORDER BY cause, target_id", args)),
                "metrics": dict(con.execute(
                    "SELECT metric, value FROM metrics WHERE run_id = ? AND query_id = ?",
                    args).fetchall()),
            }

    def quarantine(self, run_id: str) -> list[dict[str, Any]]:
        with self.connect(read_only=True) as con:
            return _dicts(
                con.execute(
                    "SELECT source, line, field, reason, raw FROM quarantine WHERE run_id = ? "
                    "ORDER BY source, line",
                    [run_id],
                )
            )


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
