"""Knowledge gaps in the store: one row per cluster of a run's queries (``gaps``), each
query's cluster (``gap_members``) and, per run, whether gaps were found or why not
(``gap_runs``). What the numbers mean is :mod:`auditor.gaps`."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from auditor.store.connection import Connection, dicts
from auditor.store.schema import migration


@migration
def m010_knowledge_gaps(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE gap_runs (
            run_id VARCHAR NOT NULL,
            clusters INTEGER NOT NULL,
            chunks INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            not_evaluated VARCHAR
        );
        CREATE TABLE gaps (
            run_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            cluster INTEGER NOT NULL,
            label VARCHAR NOT NULL,
            terms JSON NOT NULL,
            queries INTEGER NOT NULL,
            query_share DOUBLE NOT NULL,
            failing INTEGER NOT NULL,
            failure_share DOUBLE NOT NULL,
            corpus_density DOUBLE,
            top_causes JSON NOT NULL,
            unsupported INTEGER NOT NULL,
            x DOUBLE NOT NULL,
            y DOUBLE NOT NULL,
            gap_score DOUBLE NOT NULL
        );
        CREATE TABLE gap_members (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            cluster INTEGER NOT NULL
        );
        """
    )


class GapStore(Connection):
    """Writes and reads of a run's knowledge gaps."""

    def query_facts(self, run_id: str, limit: int, seed: int
                    ) -> tuple[int, list[tuple[str, str, list[str], int]]]:
        """The run's answered queries, and (query_id, query, causes, unsupported answer
        sentences) of at most ``limit`` of them (those of least md5(seed:query_id)), in
        replay order."""
        with self.connect(read_only=True) as con:
            (total,) = con.execute(
                "SELECT count(DISTINCT query_id) FROM query_results WHERE run_id = ? "
                "AND status IN ('ok', 'empty')", [run_id]).fetchone()
            rows = con.execute(
                """
                WITH picked AS (
                    SELECT query_id, any_value(query) AS query, min(seq) AS seq
                    FROM query_results WHERE run_id = $1 AND status IN ('ok', 'empty')
                    GROUP BY query_id ORDER BY md5(concat($3, ':', query_id)), query_id
                    LIMIT $2)
                SELECT p.query_id, p.query,
                       coalesce(list(DISTINCT d.cause ORDER BY d.cause)
                                FILTER (WHERE d.cause IS NOT NULL), []) AS causes,
                       coalesce(any_value(s.unsupported), 0) AS unsupported
                FROM picked p
                LEFT JOIN diagnoses d ON d.run_id = $1 AND d.query_id = p.query_id
                LEFT JOIN (SELECT query_id, count(*) FILTER (WHERE status <> 'supported')
                                  AS unsupported
                           FROM sentences WHERE run_id = $1 GROUP BY query_id) s
                  ON s.query_id = p.query_id
                GROUP BY p.query_id, p.query, p.seq ORDER BY p.seq
                """, [run_id, limit, seed]).fetchall()
        return total, [(q, text, list(causes), int(unsupported))
                       for q, text, causes, unsupported in rows]

    def write_gaps(self, run_id: str, found: dict[str, Any], clusters: list[dict[str, Any]],
                   members: dict[str, int]) -> None:
        """Replaces whatever the run held. ``found``: clusters, chunks, seed, not_evaluated;
        ``clusters`` in order, with the ``gaps`` table's columns."""
        rows = [[run_id, i, c["cluster"], c["label"], json.dumps(c["terms"]), c["queries"],
                 c["query_share"], c["failing"], c["failure_share"], c["corpus_density"],
                 json.dumps(c["top_causes"]), c["unsupported"], c["x"], c["y"], c["gap_score"]]
                for i, c in enumerate(clusters)]
        with self.connect() as con:
            con.execute("BEGIN")
            for table in ("gap_runs", "gaps", "gap_members"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.execute("INSERT INTO gap_runs VALUES (?, ?, ?, ?, ?)",
                        [run_id, found["clusters"], found["chunks"], found["seed"],
                         found["not_evaluated"]])
            if rows:
                con.executemany(f"INSERT INTO gaps VALUES ({', '.join('?' * 15)})", rows)
                con.executemany("INSERT INTO gap_members VALUES (?, ?, ?)",
                                [[run_id, q, c] for q, c in members.items()])
            con.execute("COMMIT")

    def gap_run(self, run_id: str) -> dict[str, Any] | None:
        """Whether the run's gaps were looked for: clusters, chunks, seed and the reason
        they were not evaluated; None when never (a run before this view existed)."""
        with self.connect(read_only=True) as con:
            rows = dicts(con.execute("SELECT clusters, chunks, seed, not_evaluated "
                                     "FROM gap_runs WHERE run_id = ?", [run_id]))
        return rows[0] if rows else None

    def gaps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's clusters, highest gap score first."""
        with self.connect(read_only=True) as con:
            rows = dicts(con.execute(
                "SELECT cluster, label, terms, queries, query_share, failing, failure_share, "
                "corpus_density, top_causes, unsupported, x, y, gap_score FROM gaps "
                "WHERE run_id = ? ORDER BY position", [run_id]))
        for row in rows:
            row["terms"] = json.loads(row["terms"])
            row["top_causes"] = [tuple(c) for c in json.loads(row["top_causes"])]
        return rows

    def gap_queries(self, run_id: str, cluster: int) -> list[dict[str, Any]]:
        """The queries of one cluster with their failure causes (click-through)."""
        with self.connect(read_only=True) as con:
            return dicts(con.execute(
                """
                SELECT m.query_id, any_value(q.query) AS query,
                       string_agg(DISTINCT d.cause, ', ' ORDER BY d.cause) AS causes
                FROM gap_members m
                JOIN query_results q ON q.run_id = m.run_id AND q.query_id = m.query_id
                LEFT JOIN diagnoses d ON d.run_id = m.run_id AND d.query_id = m.query_id
                WHERE m.run_id = $1 AND m.cluster = $2
                GROUP BY m.query_id ORDER BY causes IS NULL, m.query_id
                """, [run_id, cluster]))
