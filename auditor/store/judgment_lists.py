"""Judgment lists in the store: versions (immutable snapshots of labels), and rescorings of
stored runs against them.

A version is written whole, in one short transaction: every label it holds is a row of
``judgment_labels`` under ``(list_name, version)``, in ``position`` order (the order an
export writes). Nothing changes a stored version, with one exception: a judging session's
grades go into the one version the session opened, appended while it is the list's latest
and no rescoring names it (so nothing measured against it ever changes under it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from auditor.store.connection import Connection, StoreError

LABEL_COLUMNS = ("position", "query_id", "query_hash", "doc_id", "chunk_id", "text_hash",
                 "grade", "source", "labeled_at", "note", "iteration")
LABEL_SCHEMA = pa.schema([
    ("position", pa.int32()), ("query_id", pa.string()), ("query_hash", pa.string()),
    ("doc_id", pa.string()), ("chunk_id", pa.string()), ("text_hash", pa.string()),
    ("grade", pa.int32()), ("source", pa.string()),
    ("labeled_at", pa.timestamp("us", tz="UTC")), ("note", pa.string()),
    ("iteration", pa.string()),
])
_COLUMNS = ", ".join(LABEL_COLUMNS)


@dataclass(frozen=True)
class ListVersion:
    """One version of a judgment list, as ``auditor judgments list`` shows it."""

    name: str
    version: int
    created_at: datetime
    origin: str  # how it came about: "import FILE", "run RUN_ID", ...
    note: str | None
    layout: dict[str, Any]  # how an export writes it (format, separator, header)
    digest: str  # of its labels: two versions with the same labels have the same digest
    labels: int
    sources: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Rescoring:
    """A stored run measured against a judgment list version (``auditor rescore``)."""

    run_id: str
    rescore_id: int
    created_at: datetime
    list_name: str
    version: int
    selection: dict[str, Any]  # sources and policy that made the effective grades


@dataclass(frozen=True)
class RunRanking:
    """A stored run's answered queries (in log order) and their hits (in rank order)."""

    level: str
    k: tuple[int, ...]
    queries: pa.Table  # seq, query_id
    hits: pa.Table  # seq, id (chunk or document id at the run's level)


@dataclass(frozen=True)
class LoggedAnswer:
    """What a logged answer showed the model and what it cited (at the log's id level)."""

    query_id: str
    query: str
    served: tuple[str, ...]  # in served order
    cited: tuple[str, ...]


class JudgmentLists(Connection):
    """The judgment-list paths of :class:`auditor.store.Store`."""

    def add_list_version(self, name: str, labels: pa.Table, *, origin: str,
                         note: str | None, layout: dict[str, Any], digest: str) -> int:
        """Store ``labels`` (columns of ``LABEL_SCHEMA``) as the next version of ``name``
        in one transaction; returns its number (1 for a new list)."""
        table = labels.select(list(LABEL_COLUMNS)).cast(LABEL_SCHEMA)
        with self.connect() as con:
            con.execute("BEGIN")
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM judgment_lists "
                                  "WHERE name = ?", [name]).fetchone()[0]
            con.execute("INSERT INTO judgment_lists VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [name, version, datetime.now(UTC), origin, note, json.dumps(layout),
                         digest])
            _insert_labels(con, name, version, table)
            con.execute("COMMIT")
        return int(version)

    def add_labels(self, name: str, labels: pa.Table, *, origin: str,
                   session: int | None = None) -> int:
        """``labels`` after the latest labels of ``name``, in one short transaction (the
        judging page's write); returns the version that holds them.

        They go into version ``session`` itself (a judging session's open version) while
        it is still the list's latest, was made with the same ``origin`` and no rescoring
        names it yet; otherwise into a new version holding the latest labels (copied
        inside DuckDB) and these after them. The digest chains the previous one with the
        new labels."""
        table = labels.select(list(LABEL_COLUMNS)).cast(LABEL_SCHEMA)
        with self.connect() as con:
            con.execute("BEGIN")
            latest = con.execute("SELECT version, layout, digest, origin FROM judgment_lists "
                                 "WHERE name = ? ORDER BY version DESC LIMIT 1",
                                 [name]).fetchall()
            previous, layout, chained, made_by = latest[0] if latest else (0, json.dumps(
                {"format": "trec", "separator": " ", "header": None}), "", None)
            reuse = session == previous and made_by == origin and not con.execute(
                "SELECT 1 FROM rescorings WHERE list_name = ? AND version = ?",
                [name, previous]).fetchall()
            offset = con.execute("SELECT coalesce(max(position), -1) + 1 FROM judgment_labels "
                                 "WHERE list_name = ? AND version = ?",
                                 [name, previous]).fetchall()[0][0]
            table = table.set_column(0, "position", pa.array(
                [offset + i for i in range(table.num_rows)], pa.int32()))
            digest = _chain(chained, table)
            version = previous if reuse else previous + 1
            if reuse:
                con.execute("UPDATE judgment_lists SET digest = ? WHERE name = ? AND "
                            "version = ?", [digest, name, version])
            else:
                con.execute("INSERT INTO judgment_lists VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [name, version, datetime.now(UTC), origin, None, layout, digest])
                con.execute(f"INSERT INTO judgment_labels (list_name, version, {_COLUMNS}) "
                            f"SELECT list_name, ?, {_COLUMNS} FROM judgment_labels "
                            "WHERE list_name = ? AND version = ?", [version, name, previous])
            _insert_labels(con, name, version, table)
            con.execute("COMMIT")
        return int(version)

    def list_versions(self, name: str | None = None) -> list[ListVersion]:
        """Every version of ``name`` (oldest first), or of every list (by name)."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT l.name, l.version, l.created_at, l.origin, l.note, l.layout, l.digest, "
                "count(b.position), list(DISTINCT b.source ORDER BY b.source) "
                "FILTER (WHERE b.source IS NOT NULL) "
                "FROM judgment_lists l LEFT JOIN judgment_labels b "
                "ON b.list_name = l.name AND b.version = l.version "
                "WHERE $1 IS NULL OR l.name = $1 GROUP BY ALL ORDER BY l.name, l.version",
                [name]).fetchall()
        return [ListVersion(n, v, created, origin, note, json.loads(layout), digest, count,
                            tuple(sources or ())) for n, v, created, origin, note, layout,
                digest, count, sources in rows]

    def list_version(self, name: str, version: int | None = None) -> ListVersion:
        """Version ``version`` of ``name`` (its latest when None); a missing one is one
        sentence naming what the store holds."""
        versions = self.list_versions(name)
        if not versions:
            known = sorted({v.name for v in self.list_versions()})
            raise StoreError(f"no judgment list {name!r} in {self.path}" + (
                f" (lists: {', '.join(known)})" if known else
                ": create one with `auditor judgments import QRELS`"))
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise StoreError(f"judgment list {name!r} has no version {version} (versions "
                         f"1..{versions[-1].version})")

    def version_with_digest(self, name: str, digest: str) -> int | None:
        """The newest version of ``name`` holding exactly the labels ``digest`` names."""
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT max(version) FROM judgment_lists WHERE name = ? AND "
                              "digest = ?", [name, digest]).fetchone()
        return row[0] if row and row[0] is not None else None

    def list_labels(self, name: str, version: int) -> pa.Table:
        """Every label of one version, in position order (columns of ``LABEL_SCHEMA``)."""
        with self.connect(read_only=True) as con:
            table = con.sql(
                f"SELECT {', '.join(LABEL_COLUMNS)} FROM judgment_labels WHERE list_name = ? "
                "AND version = ? ORDER BY position", params=[name, version]).to_arrow_table()
        return table.cast(LABEL_SCHEMA)

    def run_ranking(self, run_id: str) -> RunRanking:
        """What a rescoring measures: the run's answered queries and their hits at its level
        (failed queries were never measured and are left out, as in the run)."""
        with self.connect(read_only=True) as con:
            found = con.execute("SELECT level, config FROM runs WHERE run_id = ?",
                                [run_id]).fetchall()
            if not found:
                raise StoreError(f"no run {run_id!r} in {self.path}: list runs with "
                                 "`auditor runs`")
            level, config = found[0][0], json.loads(found[0][1])
            column = "doc_id" if level == "doc" else "chunk_id"
            queries = con.sql(
                "SELECT seq, query_id FROM query_results WHERE run_id = ? AND status <> "
                "'error' ORDER BY seq", params=[run_id]).to_arrow_table()
            hits = con.sql(
                f"SELECT h.seq, h.{column} AS id FROM hits h JOIN query_results q "
                "USING (run_id, seq) WHERE h.run_id = ? AND q.status <> 'error' "
                "ORDER BY h.seq, h.rank", params=[run_id]).to_arrow_table()
        return RunRanking(level, tuple(int(k) for k in config.get("k") or (10,)), queries,
                          hits)

    def record_rescoring(self, run_id: str, list_name: str, version: int,
                         selection: dict[str, Any], metrics: pa.Table) -> int:
        """A rescoring and its per-query values (query_id, metric, value) in one
        transaction; returns its number on the run (1 for the first)."""
        with self.connect() as con:
            con.execute("BEGIN")
            number = con.execute("SELECT coalesce(max(rescore_id), 0) + 1 FROM rescorings "
                                 "WHERE run_id = ?", [run_id]).fetchone()[0]
            con.execute("INSERT INTO rescorings VALUES (?, ?, ?, ?, ?, ?)",
                        [run_id, number, datetime.now(UTC), list_name, version,
                         json.dumps(selection)])
            con.register("incoming", metrics)
            con.execute("INSERT INTO rescore_metrics SELECT ?, ?, query_id, metric, value "
                        "FROM incoming", [run_id, number])
            con.unregister("incoming")
            con.execute("COMMIT")
        return int(number)

    def rescorings(self, run_id: str) -> list[Rescoring]:
        """Every rescoring of ``run_id``, oldest first."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT run_id, rescore_id, created_at, list_name, version, "
                               "selection FROM rescorings WHERE run_id = ? ORDER BY rescore_id",
                               [run_id]).fetchall()
        return [Rescoring(*row[:5], json.loads(row[5])) for row in rows]

    def rescore_means(self, run_id: str, rescore_id: int) -> dict[str, tuple[float | None, int]]:
        """Mean and n (queries where defined) of each metric of one rescoring."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT metric, avg(value), count(value) FROM rescore_metrics "
                               "WHERE run_id = ? AND rescore_id = ? GROUP BY metric",
                               [run_id, rescore_id]).fetchall()
        return {metric: (mean, n) for metric, mean, n in rows}

    def logged_answers(self, run_id: str) -> list[LoggedAnswer]:
        """Every query of ``run_id`` whose log record lists cited ids, in log order."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT query_id, query, served, cited FROM query_results "
                               "WHERE run_id = ? AND cited IS NOT NULL ORDER BY seq",
                               [run_id]).fetchall()
            if not rows and not con.execute("SELECT 1 FROM runs WHERE run_id = ?",
                                            [run_id]).fetchall():
                raise StoreError(f"no run {run_id!r} in {self.path}: list runs with "
                                 "`auditor runs`")
        return [LoggedAnswer(query_id, query, _served_ids(served),
                             tuple(str(i) for i in json.loads(cited)))
                for query_id, query, served, cited in rows]


def _chain(previous: str, labels: pa.Table) -> str:
    """A version's digest after ``labels`` were added to one whose digest is ``previous``."""
    import hashlib

    added = repr(labels.drop_columns(["labeled_at"]).to_pylist())
    return hashlib.sha256((previous + added).encode()).hexdigest()


def _served_ids(served: str | None) -> tuple[str, ...]:
    """Served ids in served order, as ``LogRecord.served_ids`` (by rank when every item
    has one, else list order)."""
    items = json.loads(served) if served else []
    if all(item.get("rank") is not None for item in items):
        items = sorted(items, key=lambda item: item["rank"])
    return tuple(str(item["id"]) for item in items)


def _insert_labels(con: Any, name: str, version: int, table: pa.Table) -> None:
    """``table``'s labels into version ``version`` of list ``name`` (inside the caller's
    transaction)."""
    con.register("incoming", table)
    con.execute(f"INSERT INTO judgment_labels (list_name, version, {_COLUMNS}) "
                f"SELECT ?, ?, {_COLUMNS} FROM incoming", [name, version])
    con.unregister("incoming")
