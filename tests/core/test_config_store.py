"""Settings precedence and secrecy; the store's migrations and round trips."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from auditor.config import ConfigError, load_settings
from auditor.store import MIGRATIONS, Store, StoreError


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('mode = "dense"\ndepth = 50\nk = [10, 1, 10]\n')
    monkeypatch.setenv("AUDITOR_DEPTH", "70")
    settings = load_settings(config, level="chunk", mode=None)
    assert (settings.mode, settings.depth, settings.level, settings.k) == ("dense", 70, "chunk",
                                                                            [1, 10])
    assert load_settings(config, depth=5).depth == 5


def test_knn_is_a_synonym_of_dense(tmp_path: Path) -> None:
    assert load_settings(None, mode="knn").mode == "dense"


def test_unknown_and_invalid_keys_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('dpeth = 3\n')
    with pytest.raises(ConfigError, match=r"audit.toml: dpeth: Extra inputs"):
        load_settings(config)
    config.write_text('k = [0]\n')
    with pytest.raises(ConfigError, match="positive cut-offs"):
        load_settings(config)
    config.write_text('mode = \n')
    with pytest.raises(ConfigError, match="audit.toml"):
        load_settings(config)


def test_secrets_come_from_the_environment_and_never_reach_the_snapshot(monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_ES_API_KEY", "s3cr3t-key")
    monkeypatch.setenv("AUDITOR_ES_PASSWORD", "hunter2")
    settings = load_settings(None)
    assert settings.es_api_key.get_secret_value() == "s3cr3t-key"
    assert "s3cr3t" not in repr(settings) and "hunter2" not in str(settings)
    snapshot = json.dumps(settings.snapshot())
    assert "s3cr3t" not in snapshot and "hunter2" not in snapshot
    assert settings.snapshot()["es_credentials"] == "set"
    assert settings.es_verify_certs is True


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    with store.connect():
        pass
    with store.connect() as con:
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert rows == list(enumerate(MIGRATIONS, start=1))
    assert rows[0][1].startswith("m001_")


def _create(store: Store, run_id: str) -> None:
    store.create_run(run_id, backend="embedded", mode="bm25", level="doc", config={"a": 1},
                     fingerprint={"b": 2}, code_version="0")


def test_runs_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    _create(store, "r1")
    store.append({
        "metrics": pa.table({"run_id": ["r1"] * 3, "query_id": ["a", "b", "c"],
                             "metric": ["recall@10"] * 3, "value": [1.0, 0.0, None]}),
    })
    store.finish_run("r1", "complete", None, {"read": 3})
    run = store.run("r1")
    assert run["status"] == "complete" and run["config"] == {"a": 1}
    assert run["counts"] == {"read": 3} and run["finished_at"] >= run["started_at"]
    assert run["started_at"] <= datetime.now(UTC)
    (mean,) = store.metric_means("r1")
    assert (mean["metric"], mean["mean"], mean["n"], mean["undefined"]) == ("recall@10", 0.5, 2, 1)
    with pytest.raises(StoreError, match="no run 'r2'"):
        store.run("r2")


def test_reader_does_not_block_on_a_closed_writer_and_missing_store_is_clear(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.duckdb")
    with pytest.raises(StoreError, match="run `auditor run` first"):
        store.runs()
    _create(store, "r1")
    with store.connect(read_only=True) as first, store.connect(read_only=True) as second:
        assert first.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert second.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_a_held_store_serves_every_call_from_one_open_file(tmp_path: Path,
                                                          monkeypatch) -> None:
    """Inside ``held`` no call opens the file again (another Store on the same path
    included); what was written is there after it, and the file is free again."""
    path = tmp_path / "s.duckdb"
    store = Store(path)
    _create(store, "r1")
    with store.held():
        opened: list[bool] = []
        monkeypatch.setattr(Store, "_open", lambda self, read_only: opened.append(read_only))
        with store.held():  # an inner hold changes nothing
            store.finish_run("r1", "complete", None, {"replayed": 3})
        assert Store(tmp_path / "." / "s.duckdb").run("r1")["status"] == "complete"
        with store.connect(read_only=True) as first, store.connect() as second:
            assert first.execute("SELECT count(*) FROM runs").fetchone() == (1,)
            assert second.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert opened == []
        monkeypatch.undo()
    assert duckdb.connect(str(path), read_only=True).execute(
        "SELECT counts FROM runs").fetchone() == ('{"replayed": 3}',)


def test_busy_store_gives_a_clear_error(tmp_path: Path) -> None:
    """Another process holding the file read-write: a sentence, not a crash."""
    import subprocess
    import sys

    path = tmp_path / "s.duckdb"
    _create(Store(path), "r1")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError, match="busy"):
            Store(path, busy_timeout_s=0.3).runs()
    finally:
        holder.kill()
        holder.wait()
    assert duckdb.connect(str(path), read_only=True).execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("template", "why"),
    [("javascript:alert(1)//{doc_id}", "http:// or https://"),
     ("data:text/html,{doc_id}", "http:// or https://"),
     ("/wiki/{doc_id}", "http:// or https://"),
     ("https://wiki.example.com/page", "must hold {doc_id}")],
)
def test_doc_url_must_be_a_web_link_with_the_doc_id(
        tmp_path: Path, template: str, why: str) -> None:
    config = tmp_path / "audit.toml"
    config.write_text(f"doc_url = {json.dumps(template)}\n")
    with pytest.raises(ConfigError, match=r"audit\.toml: doc_url: .*" + re.escape(why)):
        load_settings(config)
    assert load_settings(doc_url="https://wiki.example.com/{doc_id}").doc_url == \
        "https://wiki.example.com/{doc_id}"
