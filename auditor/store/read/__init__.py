"""Reading the store: runs, their metrics, traces, baselines, gates and verdicts.

A run whose process died without finishing (SIGKILL, power cut) still says ``running`` in
the file; :meth:`Reader.runs` and :meth:`Reader.run` show it as ``interrupted`` once its
owner process (``runs.owner``) is gone, and only then may it be resumed.
"""

from __future__ import annotations

import json
from typing import Any

from auditor.owners import describe, is_alive
from auditor.store.connection import Connection, StoreError, dicts
from auditor.store.read.baseline import first_comparable, none_yet

DEFAULT_MIN_SHARED = 0.5  # of a run's replayed queries a baseline must also have answered


class Reader(Connection):
    """The read paths of :class:`auditor.store.Store`."""

    def quarantined_lines(self, run_id: str) -> set[tuple[str, int]]:
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT source, line FROM quarantine WHERE run_id = ?",
                               [run_id]).fetchall()
        return {(source, line) for source, line in rows}

    def stored_seqs(self, run_id: str) -> set[int]:
        """Places in the log of the queries ``run_id`` has stored: a Ray run stores its
        shards as they finish, out of order, so resuming it skips these, not a prefix."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT seq FROM query_results WHERE run_id = ?",
                               [run_id]).fetchall()
        return {seq for (seq,) in rows}

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """Every verdict given to ``run_id``, newest first (warnings and gates decoded)."""
        with self.connect(read_only=True) as con:
            rows = dicts(con.execute(
                "SELECT * EXCLUDE (run_id) FROM verdicts WHERE run_id = ? "
                "ORDER BY verdict_id DESC", [run_id]))
        for row in rows:
            row["warnings"] = json.loads(row["warnings"])
            row["gates"] = json.loads(row["gates"])
        return rows

    def latest_verdict(self, run_id: str) -> dict[str, Any] | None:
        rows = self.verdicts(run_id)
        return rows[0] if rows else None

    # reading -------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its shown status (see :func:`shown_status`)."""
        with self.connect(read_only=True) as con:
            rows = dicts(
                con.execute(
                    "SELECT run_id, started_at, finished_at, status, status_reason, backend, "
                    "mode, level, counts, owner FROM runs ORDER BY started_at DESC"
                )
            )
        return [shown_status(row) for row in rows]

    def run(self, run_id: str) -> dict[str, Any]:
        with self.connect(read_only=True) as con:
            rows = dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.path}: list runs with `auditor runs`")
        row = rows[0]
        for key in ("config", "fingerprint", "counts", "manifest"):
            row[key] = json.loads(row[key]) if row.get(key) else None  # old runs lack some
        return shown_status(row)

    def metric_means(self, run_id: str) -> list[dict[str, Any]]:
        """Mean and n of every metric; n counts the queries where the value is defined."""
        with self.connect(read_only=True) as con:
            return dicts(
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
            return dicts(con.execute(
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
        """Everything stored about one query of one run: result, sentences, support, conflicts,
        causes."""
        with self.connect(read_only=True) as con:
            result = dicts(con.execute(
                "SELECT * FROM query_results WHERE run_id = ? AND query_id = ?",
                [run_id, query_id]))
            if not result:
                raise StoreError(f"query {query_id!r} is not in run {run_id}")
            args = [run_id, query_id]
            return {
                "result": result[0],
                "hits": dicts(con.execute(
                    "SELECT rank, chunk_id, doc_id, score FROM hits WHERE run_id = ? AND "
                    "query_id = ? ORDER BY rank LIMIT 20", args)),
                "sentences": dicts(con.execute(
                    "SELECT * FROM sentences WHERE run_id = ? AND query_id = ? ORDER BY idx",
                    args)),
                "support": dicts(con.execute(
                    "SELECT idx, origin, chunk_id, doc_id, rank, score FROM support "
                    "WHERE run_id = ? AND query_id = ? "
                    "ORDER BY idx, origin DESC, score DESC", args)),
                "conflicts": dicts(con.execute(
                    "SELECT idx, origin, rank, chunk_id, doc_id, kind, answer_value, "
                    "passage_value FROM conflicts WHERE run_id = ? AND query_id = ? "
                    "ORDER BY idx, origin DESC, rank", args)),
                "diagnoses": dicts(con.execute(
                    "SELECT cause, target_id, evidence FROM diagnoses WHERE run_id = ? AND "
                    "query_id = ? ORDER BY cause, target_id", args)),
                "metrics": dict(con.execute(
                    "SELECT metric, value FROM metrics WHERE run_id = ? AND query_id = ?",
                    args).fetchall()),
            }

    def resolve_baseline(self, spec: str, run_id: str | None = None,
                         min_shared: float = DEFAULT_MIN_SHARED) -> str | None:
        """The run id ``spec`` names (see :meth:`comparable_baseline`), or None."""
        return self.comparable_baseline(spec, run_id, min_shared)[0]

    def comparable_baseline(self, spec: str, run_id: str | None = None,
                            min_shared: float = DEFAULT_MIN_SHARED
                            ) -> tuple[str | None, str | None]:
        """The baseline ``spec`` names and, when there is none, why.

        ``spec``: ``last`` (complete runs), ``last-passing`` (complete runs whose gates did not
        fail) or a run id. With ``run_id``, only earlier runs of the same backend, mode and
        level qualify, and only comparable ones: the same log (content digest) or at least
        ``min_shared`` of ``run_id``'s replayed queries in common. Candidates are tried newest
        first, so one ad-hoc run on another log never becomes the nightly baseline.
        """
        where = {
            "last": "status = 'complete'",
            "last-passing": "status = 'complete' AND coalesce(gate_status, 'passed') "
                            "<> 'failed'",
        }.get(spec)
        with self.connect(read_only=True) as con:
            if where is None:
                row = con.execute("SELECT run_id FROM runs WHERE run_id = ?", [spec]).fetchone()
                if row is None:
                    raise StoreError(f"baseline run {spec!r} is not in {self.path}: pass last, "
                                     "last-passing or a run id from `auditor runs`")
                if run_id is None:
                    return spec, None
                candidates = [spec]
            else:
                candidates = [r[0] for r in con.execute(
                    f"SELECT run_id FROM runs WHERE {where} AND run_id IS DISTINCT FROM $1 "
                    "AND ($1 IS NULL OR ((backend, mode, level) = (SELECT (backend, mode, "
                    "level) FROM runs WHERE run_id = $1) AND started_at < (SELECT started_at "
                    "FROM runs WHERE run_id = $1))) ORDER BY started_at DESC", [run_id],
                ).fetchall()]
                if run_id is None and candidates:
                    return candidates[0], None
            if not candidates:
                return None, none_yet(con, spec, run_id)
            assert run_id is not None
            return first_comparable(con, run_id, candidates, min_shared, where is None)

    def gates(self, run_id: str) -> list[dict[str, Any]]:
        """Gate rows of the latest verdict: failed first, then not evaluated, then passed."""
        with self.connect(read_only=True) as con:
            return dicts(con.execute(
                "SELECT * FROM (SELECT gate, metric, kind, status, passed, value, "
                "threshold, baseline_run_id, reason FROM gates WHERE run_id = ?) "
                "ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'not_evaluated' THEN 1 "
                "ELSE 2 END, gate", [run_id]))

    def comparison_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The stored metric deltas of a run against the baseline it was gated on."""
        with self.connect(read_only=True) as con:
            return dicts(con.execute(
                "SELECT * EXCLUDE (run_id) FROM comparisons WHERE run_id = ? ORDER BY metric",
                [run_id]))

    def trend(self, metrics: list[str], limit: int = 30) -> list[dict[str, Any]]:
        """Mean of each metric in the newest ``limit`` runs, oldest first (long format)."""
        with self.connect(read_only=True) as con:
            return dicts(con.execute(
                "WITH recent AS (SELECT run_id, started_at, status, gate_status FROM runs "
                "WHERE status IN ('complete', 'partial') ORDER BY started_at DESC LIMIT ?) "
                "SELECT r.run_id, r.started_at, r.status, r.gate_status, m.metric, "
                "avg(m.value) AS mean, count(m.value) AS n FROM recent r "
                "JOIN metrics m USING (run_id) WHERE list_contains(?, m.metric) "
                "GROUP BY ALL ORDER BY r.started_at, m.metric", [limit, metrics]))

    def quarantine(self, run_id: str) -> list[dict[str, Any]]:
        with self.connect(read_only=True) as con:
            return dicts(
                con.execute(
                    "SELECT source, line, field, reason, raw FROM quarantine WHERE run_id = ? "
                    "ORDER BY source, line",
                    [run_id],
                )
            )


def shown_status(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``owner`` parsed, and ``interrupted`` for a run still marked running
    whose owner process is gone (killed before it could write its final status)."""
    owner = row.get("owner")
    if isinstance(owner, str):
        owner = row["owner"] = json.loads(owner)
    if row.get("status") == "running" and not is_alive(owner):
        row["status"] = "interrupted"
        row["status_reason"] = (f"its {describe(owner)} is gone: continue it with "
                                f"`auditor run --resume {row['run_id']}`")
    return row

