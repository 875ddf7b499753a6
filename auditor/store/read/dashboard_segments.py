"""Segments of a run's queries: what the dashboard's segment filter selects, as SQL, and the
values it offers (metadata keys with their most frequent values, the logged time range)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.store.read.dashboard_frames import frame


@dataclass(frozen=True)
class Segment:
    """A slice of a run's queries: metadata values per key, and a logged time range (UTC)."""

    metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def where(self, alias: str = "q") -> tuple[str, dict[str, Any]]:
        """SQL conditions on ``query_results`` (as ``alias``) and their named parameters."""
        clauses, params = ["TRUE"], {}
        for i, (key, values) in enumerate(self.metadata):
            if values:
                clauses.append(f"list_contains($seg_v{i}, {alias}.metadata ->> $seg_k{i})")
                params[f"seg_k{i}"], params[f"seg_v{i}"] = key, list(values)
        if self.start is not None:
            clauses.append(f"{alias}.logged_at >= $seg_start")
            params["seg_start"] = self.start
        if self.end is not None:
            clauses.append(f"{alias}.logged_at <= $seg_end")
            params["seg_end"] = self.end
        return " AND ".join(clauses), params

    @property
    def active(self) -> bool:
        return any(v for _, v in self.metadata) or self.start is not None or self.end is not None


WHOLE_RUN = Segment()  # no filter: every query of the run


def segment_values(path: Path | str, run_id: str, limit: int = 50) -> dict[str, list[str]]:
    """Metadata keys of a run's queries with their most frequent values (JSON keys found by
    SQL, so any segment key the log carries can filter)."""
    df = frame(path, """
        WITH kv AS (SELECT unnest(json_keys(metadata)) AS key, metadata FROM query_results
                    WHERE run_id = $run AND metadata IS NOT NULL)
        SELECT key, metadata ->> key AS value, count(*) AS n FROM kv
        WHERE NOT starts_with(key, '$') AND NOT starts_with(key, '/')
        GROUP BY key, value
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY n DESC, value) <= $lim
        ORDER BY key, n DESC, value""", {"run": run_id, "lim": limit})
    df = df[df["value"].notna()]
    return {key: list(group["value"]) for key, group in df.groupby("key", sort=True)}


def logged_range(path: Path | str, run_id: str) -> tuple[datetime | None, datetime | None]:
    """First and last logged time of the run's queries (UTC), whole minutes."""
    row = frame(path, "SELECT date_trunc('minute', min(timezone('UTC', logged_at))) AS lo, "
                      "date_trunc('minute', max(timezone('UTC', logged_at))) "
                      "+ INTERVAL 1 MINUTE AS hi FROM query_results WHERE run_id = $run",
                {"run": run_id}).iloc[0]
    if pd.isna(row["lo"]) or pd.isna(row["hi"]):
        return None, None
    return (row["lo"].to_pydatetime().replace(tzinfo=UTC),
            row["hi"].to_pydatetime().replace(tzinfo=UTC))
