"""The store's schema: migrations ``m001_...`` keyed by name, applied in the order defined.

A merged migration is never edited; a schema change is a new migration at the end. Writers
and readers alike bring an older file up to date (:func:`pending`, :func:`migrate`); a file
holding a migration this auditor does not know was written by a newer one and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from auditor.errors import AuditorError

# name -> migration, in the order they apply (dicts keep insertion order)
MIGRATIONS: dict[str, Callable[[duckdb.DuckDBPyConnection], None]] = {}
# Stores before names were the key hold (version, name) rows; a row without a name is read
# by its position in this original order.
LEGACY_ORDER = ("m001_initial", "m002_evidence", "m003_nightly", "m004_passages",
                "m005_owner", "m006_verdicts", "m007_scrub_es_url")


class StoreError(AuditorError):
    """The store cannot be opened or read; the message says what to do."""


def migration(func: Callable[[duckdb.DuckDBPyConnection], None]) -> Callable:
    """Register ``func`` under its name, after every migration registered before it."""
    MIGRATIONS[func.__name__] = func
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


@migration
def m003_nightly(con: duckdb.DuckDBPyConnection) -> None:
    """Manifests, baselines, gates, comparisons and the embedding cache (the nightly issue)."""
    con.execute(
        """
        ALTER TABLE runs ADD COLUMN manifest JSON;
        ALTER TABLE runs ADD COLUMN baseline_run_id VARCHAR;
        ALTER TABLE runs ADD COLUMN gate_status VARCHAR;
        CREATE TABLE gates (
            run_id VARCHAR NOT NULL,
            gate VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            passed BOOLEAN NOT NULL,
            value DOUBLE,
            threshold DOUBLE NOT NULL,
            baseline_run_id VARCHAR,
            reason VARCHAR NOT NULL
        );
        CREATE TABLE comparisons (
            run_id VARCHAR NOT NULL,
            baseline_run_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            n INTEGER NOT NULL,
            baseline_mean DOUBLE,
            current_mean DOUBLE,
            delta DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            p_value DOUBLE,
            p_holm DOUBLE
        );
        CREATE TABLE embeddings (
            key VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            vector FLOAT[] NOT NULL
        );
        """
    )


@migration
def m004_passages(con: duckdb.DuckDBPyConnection) -> None:
    """The text of every chunk an answer trace cites, once per run: the dashboard shows an
    answer next to its sources even when the index (e.g. Elasticsearch) is not reachable."""
    con.execute(
        """
        CREATE TABLE passages (
            run_id VARCHAR NOT NULL,
            chunk_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            title VARCHAR,
            text VARCHAR,
            PRIMARY KEY (run_id, chunk_id)
        );
        """
    )


@migration
def m005_owner(con: duckdb.DuckDBPyConnection) -> None:
    """The process that runs each run (pid, host, start time): a run whose process is gone
    is shown ``interrupted`` instead of ``running`` forever."""
    con.execute("ALTER TABLE runs ADD COLUMN owner JSON")


@migration
def m006_verdicts(con: duckdb.DuckDBPyConnection) -> None:
    """Gate status with a third value (not evaluated) and every verdict a run was given
    (re-gating appends, never overwrites). Legacy relative gates that passed with no value
    had nothing to compare: they become not evaluated, and so do their runs."""
    con.execute(
        """
        ALTER TABLE gates ADD COLUMN status VARCHAR;
        UPDATE gates SET status = CASE
            WHEN NOT passed THEN 'failed'
            WHEN kind = 'max_drop' AND value IS NULL THEN 'not_evaluated'
            ELSE 'passed' END;
        UPDATE runs SET gate_status = 'not_evaluated' WHERE gate_status = 'passed' AND run_id IN
            (SELECT run_id FROM gates WHERE status = 'not_evaluated');
        CREATE TABLE verdicts (
            run_id VARCHAR NOT NULL,
            verdict_id INTEGER NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            gate_status VARCHAR NOT NULL,
            baseline_run_id VARCHAR,
            baseline_reason VARCHAR,
            warnings JSON NOT NULL,
            gates JSON NOT NULL,
            PRIMARY KEY (run_id, verdict_id)
        );
        """
    )


@migration
def m007_scrub_es_url(con: duckdb.DuckDBPyConnection) -> None:
    """Credentials inside ``es_url`` (``http://user:pw@host``) were stored with the run's
    config (and could reach a reason); they are secrets: remove them from stored runs."""
    from auditor.credentials import scrub_urls, split_userinfo

    rows = con.execute("SELECT run_id, config, status_reason FROM runs "
                       "WHERE config LIKE '%@%' OR status_reason LIKE '%@%'").fetchall()
    for run_id, config, reason in rows:
        data = json.loads(config)
        userinfo, clean = split_userinfo(str(data.get("es_url") or ""))
        if userinfo is not None:
            data["es_url"], data["es_credentials"] = clean, "set"
        con.execute("UPDATE runs SET config = ?, status_reason = ? WHERE run_id = ?",
                    [json.dumps(data), scrub_urls(reason) if reason else reason, run_id])


@migration
def m008_vocabulary(con: duckdb.DuckDBPyConnection) -> None:
    """One name per concept (issue 11): the stored latency is the replay's, not the one
    production logged (``served_latency_ms``), so ``query_results.latency_ms`` becomes
    ``replay_latency_ms`` (also the key in the evidence of ``slow`` and ``empty_result``
    diagnoses); a judgment's integer is a *grade*, so ``judgments.relevance`` becomes
    ``grade``. Values are kept."""
    con.execute("ALTER TABLE query_results RENAME COLUMN latency_ms TO replay_latency_ms")
    con.execute("ALTER TABLE judgments RENAME COLUMN relevance TO grade")
    rows = con.execute("SELECT rowid, evidence FROM diagnoses WHERE cause IN "
                       "('slow', 'empty_result') AND json_exists(evidence, '$.latency_ms')"
                       ).fetchall()
    if not rows:
        return
    renamed = pa.table({"rid": [rid for rid, _ in rows],
                        "evidence": [_rename_key(json.loads(text), "latency_ms",
                                                 "replay_latency_ms") for _, text in rows]})
    con.register("m008_renamed", renamed)
    try:
        con.execute("UPDATE diagnoses SET evidence = r.evidence FROM m008_renamed r "
                    "WHERE diagnoses.rowid = r.rid")
    finally:
        con.unregister("m008_renamed")


@migration
def m009_judgment_lists(con: duckdb.DuckDBPyConnection) -> None:
    """Judgment lists as versioned objects (issue 14): a version is an immutable snapshot
    of labels, each with its source (``human:<rater>``, ``imported:<file>``, ``silver``,
    ``cited``, ``llm:<model>``); a rescoring is a stored run's hits measured against
    another list version, without replaying."""
    con.execute(
        """
        CREATE TABLE judgment_lists (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            origin VARCHAR NOT NULL,
            note VARCHAR,
            layout JSON NOT NULL,
            digest VARCHAR NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE TABLE judgment_labels (
            list_name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            position INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            query_hash VARCHAR,
            doc_id VARCHAR NOT NULL,
            chunk_id VARCHAR,
            text_hash VARCHAR,
            grade INTEGER NOT NULL,
            source VARCHAR NOT NULL,
            labeled_at TIMESTAMPTZ NOT NULL,
            note VARCHAR,
            iteration VARCHAR
        );
        CREATE TABLE rescorings (
            run_id VARCHAR NOT NULL,
            rescore_id INTEGER NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            list_name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            selection JSON NOT NULL,
            PRIMARY KEY (run_id, rescore_id)
        );
        CREATE TABLE rescore_metrics (
            run_id VARCHAR NOT NULL,
            rescore_id INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE
        );
        """
    )


def _rename_key(data: dict, old: str, new: str) -> str:
    """``data`` as JSON with ``old`` named ``new``, in the same place among its keys."""
    return json.dumps({new if key == old else key: value for key, value in data.items()})


def applied(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the migrations the file has had (none for a file without the table)."""
    try:
        rows = con.execute("SELECT version, name FROM schema_migrations").fetchall()
    except duckdb.CatalogException:
        return set()
    return {name or (LEGACY_ORDER[version - 1] if 0 < version <= len(LEGACY_ORDER)
                     else f"version {version}") for version, name in rows}


def pending(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The migrations the file at ``path`` still needs, in order; refuses a file stamped
    by a newer auditor (a migration name unknown here) with one sentence."""
    done = applied(con)
    unknown = sorted(done - MIGRATIONS.keys())
    if unknown:
        raise StoreError(f"the results store {path} was written by a newer auditor (schema "
                         f"{unknown[-1]} is unknown here): upgrade auditor to open it")
    return [name for name in MIGRATIONS if name not in done]


def migrate(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Apply every migration the file has not had yet, each in its own transaction;
    returns their names."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)"
    )
    names = pending(con, path)
    for name in names:
        con.execute("BEGIN")
        MIGRATIONS[name](con)
        con.execute(
            "INSERT INTO schema_migrations SELECT coalesce(max(version), 0) + 1, ?, ? "
            "FROM schema_migrations", [name, datetime.now(UTC)])
        con.execute("COMMIT")
    return names
