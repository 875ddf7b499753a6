"""Shared fixtures for every tier folder (core, integration, oracle, elasticsearch, browser).
Markers (see pyproject) say what a test needs; `elasticsearch` tests get one real node per
session, started here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.backends.embedded import EmbeddedBackend
from auditor.corpus_reader import read_corpus
from auditor.embed import load_encoder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """A real Elasticsearch node: AUDITOR_ES_URL if set, else one started for the session.

    In CI (or with AUDITOR_REQUIRE_ES=1) a node that cannot start fails the tests.
    """
    from tests.es_node import elasticsearch_url, node_required

    try:
        context = elasticsearch_url()
        url = context.__enter__()
    except Exception as exc:  # the node could not start
        if node_required():
            pytest.fail(f"Elasticsearch node could not start: {exc}")
        pytest.skip(f"no Elasticsearch node ({exc}); set AUDITOR_REQUIRE_ES=1 to fail instead")
    try:
        yield url
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not here (only inside the workplace)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def scifact_index(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedBackend:
    """The SciFact fixture slice indexed with the fast hash encoder."""
    directory = tmp_path_factory.mktemp("scifact-index")
    chunks = read_corpus(FIXTURES / "scifact" / "corpus.jsonl")
    return EmbeddedBackend.build(chunks, directory, load_encoder("hash"))


@pytest.fixture(scope="session")
def nightly_store(tmp_path_factory: pytest.TempPathFactory):
    """Two gated nightly runs of the SciFact fixtures; the second lost relevant documents
    (see tests/stores.py)."""
    from tests.stores import build_nightly_store

    return build_nightly_store(tmp_path_factory.mktemp("nightly"))
