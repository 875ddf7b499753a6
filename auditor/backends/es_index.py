"""Creating the auditor's own Elasticsearch index from a corpus.

``build_index`` writes one primary shard (BM25 statistics, hence scores, do not depend on
how documents fall into shards), ``_id`` = chunk id, title and text as ``text`` with the
standard analyzer, the chunk's ``position`` in its document, the embedding twice
(``<vector>`` indexed with HNSW for kNN, ``<vector>_exact`` with ``flat`` so that ``exact``
mode is a brute-force kNN that needs no painless), and records in the mapping's ``_meta``
the model and the corpus hash. Bulk loading retries rejected documents with the bulk
helper's own backoff; connection and retries: see ``es_connection``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from auditor.backends.es_connection import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    Connection,
    error_reason,
    max_seq_nos,
)
from auditor.backends.es_query import EXACT_SUFFIX
from auditor.errors import BackendError
from auditor.records import Chunk

if TYPE_CHECKING:
    from auditor.embed import Encoder

log = logging.getLogger(__name__)

FORMAT = "auditor-es/1"
EMBED_BATCH = 256
BULK_CHUNK = 500


def index_mapping(fields: dict[str, str], dim: int | None) -> dict[str, Any]:
    """The explicit mapping of a built index (vectors only when there is an encoder)."""
    properties: dict[str, Any] = {
        fields["chunk_id"]: {"type": "keyword"},
        fields["doc_id"]: {"type": "keyword"},
        fields["position"]: {"type": "integer"},
        fields["title"]: {"type": "text", "analyzer": "standard"},
        fields["text"]: {"type": "text", "analyzer": "standard"},
    }
    if dim is not None:
        vector = {"type": "dense_vector", "dims": dim, "index": True, "similarity": "cosine"}
        properties[fields["vector"]] = {
            **vector, "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100}}
        properties[fields["vector"] + EXACT_SUFFIX] = {**vector, "index_options": {"type": "flat"}}
    return {"dynamic": "strict", "properties": properties}


def embed_text(chunk: Chunk) -> str:
    """What gets embedded: title and text, as the embedded index does."""
    return f"{chunk.title} {chunk.text}".strip()


def _replace_existing(conn: Connection, index: str) -> None:
    """Delete ``index`` if the auditor built it; refuse to touch anything else."""
    client = conn.client
    existing = conn.call(lambda: client.options(ignore_status=404).indices.get(
        index=index, features=["mappings"]), "checking the index").body
    if not existing or "error" in existing:
        return
    if list(existing) != [index]:
        raise BackendError(f"es_index {index} is an alias or pattern: build into a concrete "
                           "index name (and point the alias at it yourself)")
    if existing[index]["mappings"].get("_meta", {}).get("auditor", {}).get("format") != FORMAT:
        raise BackendError(f"index {index} exists and was not built by the auditor: choose "
                           "another es_index or delete it yourself")
    conn.call(lambda: client.indices.delete(index=index), "deleting the old index")


def _actions(chunks: Iterable[Chunk], fields: dict[str, str], index: str,
             encoder: Encoder | None, seen: dict[str, Chunk],
             progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    iterator = iter(chunks)
    while batch := list(islice(iterator, EMBED_BATCH)):
        for chunk in batch:
            if chunk.chunk_id in seen:
                raise BackendError(f"duplicate chunk id {chunk.chunk_id!r} in the corpus")
            seen[chunk.chunk_id] = chunk
        vectors = encoder.encode([embed_text(c) for c in batch]).tolist() if encoder else None
        for row, chunk in enumerate(batch):
            source: dict[str, Any] = {
                fields["chunk_id"]: chunk.chunk_id, fields["doc_id"]: chunk.doc_id,
                fields["position"]: chunk.position, fields["title"]: chunk.title,
                fields["text"]: chunk.text,
            }
            if vectors is not None:
                source[fields["vector"]] = source[fields["vector"] + EXACT_SUFFIX] = vectors[row]
            yield {"_op_type": "index", "_index": index, "_id": chunk.chunk_id, "_source": source}
        if progress:
            progress(len(batch))


def build_index(conn: Connection, fields: dict[str, str], chunks: Iterable[Chunk],
                encoder: Encoder | None, progress: Callable[[int], None] | None = None) -> None:
    """(Re)create the index from ``chunks``: explicit mapping, bulk load, refresh, ``_meta``.

    Chunks stream through in batches (embedded ``EMBED_BATCH`` at a time); a failed build
    deletes the half-built index.
    """
    from elasticsearch import ApiError, TransportError
    from elasticsearch.helpers import BulkIndexError, streaming_bulk

    from auditor.backends.embedded import content_hash

    client, index = conn.client, conn.index
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None:
        raise BackendError("the corpus is empty: nothing to index")
    for note in conn.notes():
        log.info("%s: %s", conn.url, note)
    _replace_existing(conn, index)
    mapping = index_mapping(fields, encoder.dim if encoder else None)
    conn.call(lambda: client.indices.create(index=index, mappings=mapping, settings={
        "number_of_shards": 1, "auto_expand_replicas": "0-1", "refresh_interval": "-1",
    }), "creating the index")
    seen: dict[str, Chunk] = {}
    try:
        actions = _actions(chain([first], iterator), fields, index, encoder, seen, progress)
        for _ok, _item in streaming_bulk(
            client, actions, chunk_size=BULK_CHUNK, max_retries=conn.max_retries,
            initial_backoff=BACKOFF_BASE_S, max_backoff=BACKOFF_CAP_S,
        ):
            pass
        conn.call(lambda: client.indices.put_settings(
            index=index, settings={"refresh_interval": None}), "restoring refresh")
        conn.call(lambda: client.indices.refresh(index=index), "refreshing the index")
        max_seq_no = sum(max_seq_nos(conn, index).values())
        meta = {"auditor": {
            "format": FORMAT,
            "model_id": encoder.model_id if encoder else None,
            "dim": encoder.dim if encoder else None,
            "embedded_text": "title + ' ' + text" if encoder else None,
            "chunk_count": len(seen),
            "document_count": len({chunk.doc_id for chunk in seen.values()}),
            "content_hash": content_hash(seen.values()),
            "max_seq_no": max_seq_no,
        }}
        conn.call(lambda: client.indices.put_mapping(index=index, meta=meta),
                  "recording the build")
    except BulkIndexError as exc:
        _drop(conn, index)
        first_error = exc.errors[0] if exc.errors else {}
        raise BackendError(conn.scrub(
            f"{len(exc.errors)} chunk(s) could not be indexed into {index} (first: "
            f"{error_reason(next(iter(first_error.values()), {}).get('error'))}): fix the "
            "corpus or the mapping and build again")) from None
    except (ApiError, TransportError) as exc:
        _drop(conn, index)
        raise conn.error(exc, "loading chunks") from None
    except BaseException:
        _drop(conn, index)
        raise


def _drop(conn: Connection, index: str) -> None:
    try:
        conn.client.options(ignore_status=404).indices.delete(index=index)
    except Exception:  # the original failure matters more than this clean-up
        log.warning("could not delete the half-built index %s", index)
