"""Read-only frames: each read opens a short read-only connection, runs its SQL and closes it.

A DuckDB file is open read-write by one process or read-only by many, never both, so a
nightly writer must never wait for a reader (a browser tab): no reader keeps a connection.
A store written by an older auditor lacks some tables and columns; :func:`names_of` tells which
are there, and each reader returns empty frames or NULL columns for what is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from auditor.store.connection import Connection


@contextmanager
def reading(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the store at ``path``, closed when the block ends."""
    with Connection(Path(path)).connect(read_only=True) as con:
        yield con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
          ) -> pd.DataFrame:
    """One query's rows as a pandas frame (through Arrow: DuckDB types kept)."""
    return con.sql(sql, params=params or {}).to_arrow_table().to_pandas()


def frame(path: Path | str, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one query on a fresh read-only connection (closed before returning)."""
    with reading(path) as con:
        return query(con, sql, params)


def names_of(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The store's table names and ``table.column`` names (old stores lack some)."""
    df = query(con, "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'main'")
    return frozenset(df["table_name"]) | frozenset(df["table_name"] + "." + df["column_name"])
