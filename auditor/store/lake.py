"""A run's facts as hive-partitioned Parquet (``auditor export RUN --parquet DIR``), for teams
whose data lives in a lakehouse: one folder per table, one ``run_date=YYYY-MM-DD`` folder per
night inside it, one file per run there. Spark, Trino, DuckDB or pandas read ``DIR/metrics``
as one table whose ``run_date`` column prunes the files a query opens.
"""

from __future__ import annotations

import re
from pathlib import Path

from auditor.store.connection import Connection, StoreError


class LakeExport(Connection):
    """The Parquet export path of :class:`auditor.store.Store`."""

    def export_parquet(self, run_id: str, directory: Path) -> dict[str, int]:
        """Every table holding ``run_id``'s rows written under ``directory/<table>/
        run_date=<the run's start date>/``; returns rows per table (empty tables left out).
        Exporting the run again replaces its files, other runs' files stay."""
        with self.connect(read_only=True) as con:
            found = con.execute("SELECT CAST(started_at AS DATE) FROM runs WHERE run_id = ?",
                                [run_id]).fetchone()
            if found is None:
                raise StoreError(f"no run {run_id!r} in {self.path}: see `auditor runs`")
            tables = [t for (t,) in con.execute(
                "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'main' AND "
                "column_name = 'run_id' ORDER BY table_name").fetchall()]
            directory.mkdir(parents=True, exist_ok=True)
            pattern = "run_" + re.sub(r"[^A-Za-z0-9_-]", "_", run_id) + "_{i}"
            written = {}
            for table in tables:
                rows = con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?",
                                   [run_id]).fetchone()[0]
                if not rows:
                    continue
                target = str(directory / table).replace("'", "''")
                con.execute(
                    f"COPY (SELECT *, ?::DATE AS run_date FROM {table} WHERE run_id = ?) "
                    f"TO '{target}' (FORMAT parquet, PARTITION_BY (run_date), "
                    f"OVERWRITE_OR_IGNORE, FILENAME_PATTERN '{pattern}')",
                    [found[0], run_id])
                written[table] = rows
        return written
