"""``gather`` on a real Elasticsearch node (``es_url``): exact kNN, explain and the
unfiltered ablation feed the causes (the embedded half is in tests/core/test_diagnose.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from auditor.ablations import gather
from auditor.cases import Thresholds
from auditor.diagnose import diagnose
from auditor.embed import load_encoder
from tests.core.test_diagnose import T, corpus, replayed


# gather on Elasticsearch -----------------------------------------------------------------
@pytest.fixture(scope="module")
def es_index(es_url: str) -> Iterator[tuple[str, str]]:
    from elasticsearch import Elasticsearch

    from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions
    from auditor.config import AuditSettings

    name = f"auditor-test-diagnose-{uuid.uuid4().hex[:6]}"
    options = ElasticsearchOptions.from_settings(AuditSettings(es_url=es_url, es_index=name))
    ElasticsearchBackend.build(options, corpus(),
                               load_encoder("hash")).close()
    yield es_url, name
    with Elasticsearch(es_url) as client:
        client.options(ignore_status=404).indices.delete(index=name)


def es_backend(es_index: tuple[str, str], **settings: Any) -> Any:
    from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions
    from auditor.config import AuditSettings

    url, name = es_index
    options = AuditSettings(es_url=url, es_index=name, **settings)
    return ElasticsearchBackend(ElasticsearchOptions.from_settings(options),
                                load_encoder("hash"))


@pytest.mark.elasticsearch
def test_gather_on_elasticsearch_exact_and_explain(es_index: tuple[str, str]) -> None:
    backend = es_backend(es_index)
    k1 = Thresholds(k=1)
    (query,) = replayed(backend, "hybrid", "chunk", {"q": ("cat purrs dog", ["dogs#0"])})
    assert query.hits[0].chunk_id == "cats#0" and query.hits[1].chunk_id == "dogs#0"
    query = query.with_findings(gather([query], backend, "hybrid", k1, template=False)[0])
    assert set(query.ablations) == {"bm25", "dense", "exact"} and query.notes == {}
    assert [h.chunk_id for h in query.ablations["exact"]] == [
        h.chunk_id for h in query.ablations["dense"]]  # five chunks: HNSW is exact here
    assert query.query_terms == ["cat", "purrs", "dog"]  # the standard analyzer: no stems
    explained = query.explain["dogs#0"]
    assert explained["matched"] and {t["term"] for t in explained["terms"]} == {"dog"}
    (row,) = [d for d in diagnose(query, k1) if d.cause == "ranked_below_k"]
    assert row.evidence["rank"] == 2 and row.evidence["explain"]["matched"]
    bm25 = {h.chunk_id: h.score for h in query.ablations["bm25"]}
    assert explained["score"] == pytest.approx(bm25["dogs#0"], rel=1e-5)
    json.dumps(row.evidence)


@pytest.mark.elasticsearch
def test_gather_on_elasticsearch_filtered_out(es_index: tuple[str, str]) -> None:
    template = ('{"query": {"bool": {"must": {"match": {"text": "{{query}}"}}, '
                '"filter": {"term": {"doc_id": "cats"}}}}}')
    backend = es_backend(es_index, es_template=template)
    (query,) = replayed(backend, "template", "doc", {"q": ("cat dog barks", ["dogs"])})
    assert [h.doc_id for h in query.hits] == ["cats"]
    query = query.with_findings(gather([query], backend, "template", T, template=True)[0])
    assert [h.doc_id for h in query.ablations["unfiltered"]][:2] == ["dogs", "cats"]
    (row,) = [d for d in diagnose(query, T) if d.cause == "filtered_out"]
    assert row.target_id == "dogs" and row.evidence["unfiltered_rank"] == 1
