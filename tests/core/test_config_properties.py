"""Settings as properties: what a run stores (its snapshot) written back as an audit.toml
loads to the same settings, flags beat the environment beat the file for any value, and
cut-offs come out sorted and unique whatever order they were given in."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.config import AuditSettings, ConfigError, load_settings

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
FRACTION = st.floats(0, 1, allow_nan=False)
GATE = st.sampled_from(["recall@10", "ndcg@10", "mrr@10"]).flatmap(lambda metric: st.one_of(
    st.fixed_dictionaries({"metric": st.just(metric), "min": FRACTION}),
    st.fixed_dictionaries({"metric": st.just(metric), "max_drop": FRACTION})))
FIELDS = st.fixed_dictionaries({}, optional={
    "mode": st.sampled_from(["bm25", "dense", "hybrid"]),
    "level": st.sampled_from(["doc", "chunk"]),
    "k": st.lists(st.integers(1, 1000), min_size=1, max_size=6),
    "depth": st.integers(1, 10_000),
    "batch_size": st.integers(1, 10_000),
    "trace": st.booleans(),
    "slow_ms": st.floats(0.001, 1e9, allow_nan=False),
    "drift_overlap": FRACTION,
    "store": TEXT.map(lambda text: f"stores/{text}.duckdb"),
    "encoder": st.sampled_from(["minilm", "hash"]),
    "es_index": TEXT,
    "es_fields": st.dictionaries(TEXT, TEXT, max_size=3),
    "gates": st.lists(GATE, max_size=3),
    "cron": st.sampled_from(["0 2 * * *", "*/15 * * * 1-5"]),
})


def toml_value(value: Any) -> str:
    """TOML for a JSON value without nulls (TOML has none: a missing key is the default)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(item)}"
                               for key, item in value.items() if item is not None) + "}"
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string, integer or float


def load_toml(text: str, **overrides: Any) -> AuditSettings:
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "audit.toml"
        config.write_text(text, encoding="utf-8")
        return load_settings(config, **overrides)


@settings(max_examples=60, deadline=None)
@given(fields=FIELDS)
def test_a_stored_snapshot_written_back_as_toml_loads_to_the_same_settings(
        fields: dict[str, Any]) -> None:
    snapshot = AuditSettings(**fields).snapshot()
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in snapshot.items()
                   if value is not None and key not in ("es_credentials", "webhook"))
    assert load_toml(text).snapshot() == snapshot


@settings(max_examples=40, deadline=None)
@given(file=st.none() | st.integers(1, 10_000), env=st.none() | st.integers(1, 10_000),
       flag=st.none() | st.integers(1, 10_000))
def test_flag_beats_environment_beats_file_beats_default(
        file: int | None, env: int | None, flag: int | None) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AUDITOR_DEPTH", raising=False)
        if env is not None:
            patch.setenv("AUDITOR_DEPTH", str(env))
        loaded = load_toml("" if file is None else f"depth = {file}\n", depth=flag)
    expected = next((v for v in (flag, env, file) if v is not None),
                    AuditSettings.model_fields["depth"].default)
    assert loaded.depth == expected


@settings(max_examples=40, deadline=None)
@given(k=st.lists(st.integers(-5, 500), max_size=8))
def test_cut_offs_are_sorted_unique_and_positive(k: list[int]) -> None:
    if k and min(k) >= 1:
        assert load_toml(f"k = {k}\n").k == sorted(set(k))
    else:
        with pytest.raises(ConfigError, match="positive cut-offs"):
            load_toml(f"k = {k}\n")
