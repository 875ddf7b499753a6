"""Stores built row by row for tests that need exact, hand-checkable contents (the judging
queue, weak judges): runs with their queries and ranked hits, nothing else."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pyarrow as pa

from auditor.store import Store
from auditor.store.judgment_lists import LABEL_SCHEMA


def empty_store(store: Store) -> Store:
    with store.connect():
        pass  # creates the schema
    return store


def add_run(con: duckdb.DuckDBPyConnection, run_id: str, *, mode: str, log: str,
            started: datetime, hits: dict[str, list[str]], queries: tuple[str, ...],
            level: str = "doc", baseline: str | None = None) -> None:
    """A complete run of ``queries`` (in log order) whose ranked ids are ``hits``."""
    con.execute(
        "INSERT INTO runs (run_id, started_at, status, backend, mode, level, config, "
        "fingerprint, code_version, baseline_run_id) VALUES (?, ?, 'complete', 'embedded', "
        "?, ?, ?, '{}', 'test', ?)",
        [run_id, started, mode, level, json.dumps({"log": log, "k": [10]}), baseline])
    for seq, query_id in enumerate(queries):
        con.execute("INSERT INTO query_results (run_id, seq, query_id, query, status, n_hits) "
                    "VALUES (?, ?, ?, ?, 'ok', 1)", [run_id, seq, query_id, f"query {query_id}"])
        for rank, doc in enumerate(hits.get(query_id, []), start=1):
            con.execute("INSERT INTO hits VALUES (?, ?, ?, ?, ?, ?, 1.0)",
                        [run_id, seq, query_id, rank, f"{doc}#0", doc])


def labels(rows: list[tuple[str, str, int, str]], at: datetime) -> pa.Table:
    """(query_id, doc_id, grade, source) rows as a version's labels, in this order."""
    return pa.Table.from_pylist([{
        "position": i, "query_id": q, "query_hash": None, "doc_id": d, "chunk_id": None,
        "text_hash": None, "grade": g, "source": s, "labeled_at": at, "note": None,
        "iteration": None} for i, (q, d, g, s) in enumerate(rows)], schema=LABEL_SCHEMA)
