"""Choosing a comparable baseline run: same log, or enough shared queries."""

from __future__ import annotations

import duckdb


def none_yet(con: duckdb.DuckDBPyConnection, spec: str, run_id: str | None) -> str:
    earlier = con.execute(
        "SELECT count(*) FROM runs WHERE $1 IS NOT NULL AND run_id <> $1 AND "
        "(backend, mode, level) = (SELECT (backend, mode, level) FROM runs WHERE run_id = $1) "
        "AND started_at < (SELECT started_at FROM runs WHERE run_id = $1)",
        [run_id]).fetchone()[0]
    if not earlier:
        return "first run: nothing to compare with"
    kind = "complete run whose gates did not fail" if spec == "last-passing" else \
        "complete run"
    return f"no earlier {kind} of this backend, mode and level to compare with"


def log_digest(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    row = con.execute("SELECT json_extract_string(manifest, '$.log.sha256') FROM runs "
                      "WHERE run_id = ?", [run_id]).fetchone()
    return row[0] if row else None


def first_comparable(con: duckdb.DuckDBPyConnection, run_id: str, candidates: list[str],
                      min_shared: float, explicit: bool = False
                      ) -> tuple[str | None, str | None]:
    """The newest candidate with the same log, or sharing ``min_shared`` of ``run_id``'s
    replayed queries; otherwise None and why the newest candidate did not qualify."""
    digest = log_digest(con, run_id)
    total = con.execute("SELECT count(DISTINCT query_id) FROM query_results WHERE run_id = ?",
                        [run_id]).fetchone()[0]
    closest: tuple[str, float] | None = None
    for candidate in candidates:
        if digest is not None and log_digest(con, candidate) == digest:
            return candidate, None
        if not total:
            continue
        shared = con.execute(
            "SELECT count(*) FROM (SELECT query_id FROM query_results WHERE run_id = $1 "
            "INTERSECT SELECT query_id FROM query_results WHERE run_id = $2)",
            [run_id, candidate]).fetchone()[0]
        share = shared / total
        if share >= min_shared:
            return candidate, None
        if closest is None:
            closest = (candidate, share)
    if closest is None:
        return None, "this run replayed no query, so no run is comparable with it"
    many = len(candidates)
    if many == 1 and explicit:
        return None, (f"no comparable baseline: run {closest[0]} shares {closest[1]:.0%} of "
                      f"this run's queries (needs {min_shared:.0%})")
    return None, (f"no comparable baseline: the newest candidate {closest[0]} shares "
                  f"{closest[1]:.0%} of this run's queries (needs {min_shared:.0%})"
                  + (f", and none of the {many - 1} older ones shares enough" if many > 1
                     else ""))

