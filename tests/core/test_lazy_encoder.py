"""The cached encoder loads its model on the first cache miss only: a run whose texts are
all in the store never builds the model (loading MiniLM is a quarter of a cold run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditor.audit import run_audit
from auditor.config import AuditSettings
from auditor.embed import CachedEncoder, Encoder, load_encoder
from auditor.store import Store

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "fixtures" / "scifact"
TEXTS = ["Macrophages infiltrate tumours.", "The ECM stiffens.", "Macrophages infiltrate tumours."]


class CountingLoad:
    """The real load function, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Encoder:
        self.calls += 1
        return load_encoder("hash")


def cached(store: Store) -> tuple[CachedEncoder, CountingLoad]:
    load = CountingLoad()
    return CachedEncoder(load, store, "hash-bow-384"), load


def test_model_is_loaded_on_the_first_miss_and_never_on_a_full_hit(tmp_path: Path) -> None:
    store = Store(tmp_path / "audit.duckdb")
    first, load = cached(store)
    assert not first.loaded and load.calls == 0
    vectors = first.encode(TEXTS)
    assert load.calls == 1 and first.loaded
    first.encode(TEXTS)  # found in this run's pending vectors
    assert load.calls == 1
    first.flush()

    again, reload = cached(store)
    same = again.encode(TEXTS)
    assert reload.calls == 0 and not again.loaded
    assert again.stats.encoded == 0 and again.stats.hit_rate == 1.0
    np.testing.assert_array_equal(same, vectors)
    again.encode(["A sentence nobody cached."])
    assert reload.calls == 1


def test_a_loaded_model_must_match_the_cache_keys(tmp_path: Path) -> None:
    wrong = CachedEncoder(lambda: load_encoder("hash"), Store(tmp_path / "a.duckdb"), "other")
    try:
        wrong.encode(["text"])
    except ValueError as exc:
        assert "keyed for other" in str(exc)
    else:
        raise AssertionError("a model of another id was accepted")


def test_a_rerun_on_the_same_store_never_loads_the_model(tmp_path: Path) -> None:
    """Hybrid, trace, ablations and the self-probe all embed through the cache; the second
    identical run finds every text and the real load function is never called."""
    index = tmp_path / "index"
    from auditor.backends.embedded import EmbeddedBackend
    from auditor.corpus_reader import read_corpus

    EmbeddedBackend.build(read_corpus(SCIFACT / "corpus.jsonl"), index, load_encoder("hash"))
    settings = AuditSettings(
        log=SCIFACT / "log.jsonl", qrels=SCIFACT / "qrels.tsv", store=tmp_path / "a.duckdb",
        index=index, encoder="hash", mode="hybrid", trace=True, ablations=True,
    )
    run_audit(settings)
    load_encoder.cache_clear()
    run_id, status = run_audit(settings)
    assert status == "complete"
    assert load_encoder.cache_info().misses == 0  # the model was never built
    cache = Store(settings.store).run(run_id)["counts"]["embedding_cache"]
    assert cache["encoded"] == 0 and cache["lookups"] > 0 and cache["hit_rate"] == 1.0


def test_index_build_embeds_the_corpus_side_once_and_the_audit_only_the_rest(
        tmp_path: Path) -> None:
    """Passages, their windows and the self-probes are cached at `index build`: a rebuild
    embeds nothing (and never loads the model), and the audit embeds exactly its queries
    and answer sentences."""
    import json

    from auditor.cli.run import build_index
    from auditor.corpus_reader import read_corpus
    from auditor.prefetch import corpus_texts
    from auditor.sentences import is_factual, split_sentences

    settings = AuditSettings(
        log=SCIFACT / "log.jsonl", qrels=SCIFACT / "qrels.tsv", store=tmp_path / "a.duckdb",
        index=tmp_path / "index", corpus=SCIFACT / "corpus.jsonl", encoder="hash",
        mode="hybrid", trace=True, ablations=True, self_probe=True,
    )
    build_index(settings)
    load_encoder.cache_clear()
    assert "100% hits" in build_index(settings)
    assert load_encoder.cache_info().misses == 0
    records = [json.loads(line) for line in (SCIFACT / "log.jsonl").read_text().splitlines()]
    expected = {r["query"] for r in records} | {
        s.text for r in records for s in split_sentences(r.get("answer") or "") if is_factual(s)}
    expected -= set(corpus_texts(read_corpus(settings.corpus)))  # answers quote the corpus
    run_id, _ = run_audit(settings)
    cache = Store(settings.store).run(run_id)["counts"]["embedding_cache"]
    assert 0 < cache["encoded"] == len(expected)
