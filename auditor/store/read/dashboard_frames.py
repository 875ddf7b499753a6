"""Read-only frames: each read opens a short read-only connection, runs its SQL and closes it.

A DuckDB file is open read-write by one process or read-only by many, never both, so a
nightly writer must never wait for a reader (a browser tab): no reader keeps a connection.
A store written by an older auditor is upgraded before it is read (``Connection.connect``).
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
