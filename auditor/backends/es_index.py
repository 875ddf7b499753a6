"""Talking to Elasticsearch and creating the auditor's index.

Connection and retries. The client retries connection errors and timeouts itself
(``max_retries``, ``retry_on_timeout``) with its equal-jitter exponential backoff
(``retry_backoff_base``/``retry_backoff_cap``). It would retry HTTP 429/502/503/504 at once,
without waiting, so those are retried here instead with full-jitter exponential backoff
(:meth:`Connection.call`). Bulk loading retries rejected documents with the bulk helper's
own backoff. Credentials live in the client only: messages are scrubbed of them.

The index. ``build_index`` writes one primary shard (BM25 statistics, hence scores, do not
depend on how documents fall into shards), ``_id`` = chunk id, title and text as ``text``
with the standard analyzer, the chunk's ``position`` in its document, the embedding twice
(``<vector>`` indexed with HNSW for kNN, ``<vector>_exact`` with ``flat`` so that ``exact``
mode is a brute-force kNN that needs no painless), and records in the mapping's ``_meta``
the model and the corpus hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from auditor.backends import BackendError
from auditor.credentials import display_url
from auditor.records import Chunk

if TYPE_CHECKING:
    from auditor.config import AuditSettings
    from auditor.embed import Encoder

log = logging.getLogger(__name__)

FORMAT = "auditor-es/1"
ROLES = ("chunk_id", "doc_id", "title", "text", "vector", "position")
DEFAULT_FIELDS = {"chunk_id": "chunk_id", "doc_id": "doc_id", "title": "title", "text": "text",
                  "vector": "embedding", "position": "position"}
EXACT_SUFFIX = "_exact"  # <vector>_exact: the flat-indexed copy that exact mode searches
RETRY_STATUSES = (429, 502, 503, 504)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
EMBED_BATCH = 256
BULK_CHUNK = 500
MODULES = {  # module or plugin → what its absence means here
    "analysis-common": "only the standard analyzer exists (no stemming, no stop words)",
    "lang-painless": "request templates that use scripts fail query by query",
    "rank-rrf": "no server-side RRF; hybrid fuses client-side, as it always does",
}
T = TypeVar("T")


def resolve_fields(overrides: dict[str, str]) -> dict[str, str]:
    """The user's (possibly partial) field map over the defaults."""
    unknown = sorted(set(overrides) - set(ROLES))
    if unknown:
        raise BackendError(f"es_fields has unknown key(s) {unknown}: use only {list(ROLES)}")
    return {**DEFAULT_FIELDS, **overrides}


def canonical_sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def backoff(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] seconds."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def error_reason(error: Any) -> str:
    """One line from an Elasticsearch error body: the root cause and its deepest cause."""
    if not isinstance(error, dict):
        return (str(error).splitlines() or ["unknown error"])[0]
    if isinstance(error.get("error"), dict):
        error = error["error"]
    root = (error.get("root_cause") or [error])[0]
    text = f"{root.get('type', 'error')}: {root.get('reason', '')}"
    shards = error.get("failed_shards") or []
    node: Any = shards[0].get("reason") if shards else error
    deepest = None
    while isinstance(node, dict):
        node = node.get("caused_by")
        if isinstance(node, dict):
            deepest = node.get("reason")
    if deepest and deepest not in text:
        text += f" ({deepest})"
    return text.splitlines()[0].strip()


def _secrets(settings: AuditSettings) -> list[str]:
    """Every credential string, longest first (so a key is scrubbed before its parts)."""
    found = [urlsplit(settings.es_url).password or ""]
    for secret in (settings.es_password, settings.es_api_key):
        value = secret.get_secret_value() if secret is not None else ""
        found += [value, value.partition(":")[2]]  # an api key may be "id:key"
    if settings.es_username is not None and settings.es_username.get_secret_value():
        found.append(f"[{settings.es_username.get_secret_value()}]")  # "for user [name]"
    return sorted({value for value in found if len(value) > 2}, key=len, reverse=True)


def field_mapping(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path (object properties or multi-fields)."""
    head, _, rest = path.partition(".")
    entry = properties.get(head)
    if entry is None or not rest:
        return entry
    return field_mapping({**entry.get("properties", {}), **entry.get("fields", {})}, rest)


@dataclass(frozen=True)
class NodeInfo:
    version: str
    modules: tuple[str, ...]
    plugins: tuple[str, ...]

    def has(self, name: str) -> bool:
        return name in self.modules or name in self.plugins


class Connection:
    """A client for ``settings``, its retries and its error messages."""

    def __init__(self, settings: AuditSettings) -> None:
        from elasticsearch import Elasticsearch

        self.settings = settings
        self.url = display_url(settings.es_url)
        self.max_retries = settings.es_max_retries
        self._secrets = _secrets(settings)
        options: dict[str, Any] = {
            "request_timeout": settings.es_timeout_s,
            "max_retries": settings.es_max_retries,
            "retry_on_timeout": True,
            "retry_on_status": (),  # retried in call(), with backoff
            "retry_backoff_base": BACKOFF_BASE_S,
            "retry_backoff_cap": BACKOFF_CAP_S,
            "connections_per_node": max(10, 2 * settings.es_concurrency),
        }
        if urlsplit(settings.es_url).scheme == "https":  # the client refuses TLS options on http
            options["verify_certs"] = settings.es_verify_certs
            if settings.es_ca_certs is not None:
                options["ca_certs"] = str(settings.es_ca_certs)
        if settings.es_api_key is not None:
            options["api_key"] = settings.es_api_key.get_secret_value()
        elif settings.es_username is not None:
            password = settings.es_password.get_secret_value() if settings.es_password else ""
            options["basic_auth"] = (settings.es_username.get_secret_value(), password)
        try:
            from elasticsearch.serializer import OrjsonSerializer

            options["serializer"] = OrjsonSerializer()
        except ImportError:
            pass
        try:
            self.client = Elasticsearch(settings.es_url, **options)
        except ValueError as exc:
            problem = self.scrub(f"es_url {self.url} is unusable ({exc}): fix it")
            raise BackendError(problem) from None
        self._node: NodeInfo | None = None

    def scrub(self, text: str) -> str:
        """``text`` without any credential (messages may quote the node's own words)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def call(self, request: Callable[[], T], what: str, passthrough: tuple[int, ...] = ()) -> T:
        """``request()``, retried on 429/502/503/504 with backoff; failures become a
        BackendError saying what to do. API errors with a ``passthrough`` status are re-raised."""
        from elasticsearch import ApiError, TransportError

        attempt = 0
        while True:
            try:
                return request()
            except ApiError as exc:
                if exc.meta.status in passthrough:
                    raise
                if exc.meta.status not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise self.error(exc, what) from None
            except TransportError as exc:  # the client has retried these already
                raise self.error(exc, what) from None
            time.sleep(backoff(attempt))
            attempt += 1

    def missing_index(self) -> BackendError:
        return BackendError(
            f"index {self.settings.es_index} does not exist at {self.url}: build it with "
            "`auditor index build --backend elasticsearch` or set es_index to an existing index"
        )

    def error(self, exc: Exception, what: str) -> BackendError:
        from elastic_transport import TlsError
        from elasticsearch import (
            ApiError,
            AuthenticationException,
            AuthorizationException,
            ConnectionError,
            ConnectionTimeout,
            NotFoundError,
            UnsupportedProductError,
        )

        url, index = self.url, self.settings.es_index
        if isinstance(exc, ConnectionTimeout):
            text = (f"Elasticsearch at {url} did not answer {what} within "
                    f"{self.settings.es_timeout_s:g}s ({self.max_retries} retries): raise "
                    "es_timeout_s, lower batch_size or es_concurrency, or check the node's load")
        elif isinstance(exc, TlsError):
            text = (f"the TLS handshake with {url} failed ({exc}): set es_ca_certs to the "
                    "cluster's CA file (or es_verify_certs = false for a test node)")
        elif isinstance(exc, ConnectionError):
            text = (f"Elasticsearch at {url} is not answering: start it with "
                    "`scripts/elasticsearch.sh start` or `docker compose up -d elasticsearch`, "
                    "or set AUDITOR_ES_URL")
        elif isinstance(exc, UnsupportedProductError):
            text = f"the server at {url} is not Elasticsearch: point AUDITOR_ES_URL at a node"
        elif isinstance(exc, AuthenticationException):
            text = (f"Elasticsearch at {url} rejected the credentials (HTTP 401): check "
                    "AUDITOR_ES_API_KEY, or AUDITOR_ES_USERNAME and AUDITOR_ES_PASSWORD")
        elif isinstance(exc, AuthorizationException):
            text = (f"the credentials may not do {what} on {url} (HTTP 403: "
                    f"{error_reason(exc.body)}): grant them read access to index {index} "
                    "(and write access to build it)")
        elif isinstance(exc, NotFoundError) and "index_not_found" in str(exc.body):
            return self.missing_index()
        elif isinstance(exc, ApiError) and "compatible-with" in str(exc.body):
            text = (f"Elasticsearch at {url} is older than this client (elasticsearch-py 9) "
                    "accepts: upgrade the cluster to 9.x or install elasticsearch-py 8")
        elif isinstance(exc, ApiError):
            text = (f"Elasticsearch at {url} refused {what} (HTTP {exc.meta.status} "
                    f"{error_reason(exc.body)}): fix the settings or the index")
        else:
            text = f"Elasticsearch at {url} failed {what} ({exc}): retry or check the node"
        return BackendError(self.scrub(text))

    @property
    def node(self) -> NodeInfo:
        """Version, modules and plugins of the cluster's nodes (asked once)."""
        if self._node is None:
            self._node = self._ask_node()
        return self._node

    def _ask_node(self) -> NodeInfo:
        from elasticsearch import AuthorizationException

        try:
            body = self.call(lambda: self.client.nodes.info(
                metric="plugins",
                filter_path="nodes.*.version,nodes.*.modules.name,nodes.*.plugins.name",
            ), "the node check", passthrough=(403,)).body
        except AuthorizationException:
            log.info("%s: cannot list the node's modules (no monitor privilege)", self.url)
            return NodeInfo("unknown", (), ())
        nodes = list(body.get("nodes", {}).values())
        version = min((n["version"] for n in nodes), default="unknown",
                      key=lambda v: tuple(int(p) for p in v.split("-")[0].split(".")))

        def names(key: str) -> tuple[str, ...]:
            return tuple(sorted({p["name"] for n in nodes for p in n.get(key) or []}))

        if version.split(".")[0].isdigit() and int(version.split(".")[0]) < 8:
            raise BackendError(f"Elasticsearch {version} at {self.url} is too old: "
                               "the auditor needs 8.x or 9.x")
        return NodeInfo(version, names("modules"), names("plugins"))

    def notes(self) -> list[str]:
        """What this node lacks and what that changes, one sentence each."""
        node = self.node
        if not node.modules:
            return []
        return [f"no {name} module: {effect}" for name, effect in MODULES.items()
                if not node.has(name)]


def max_seq_nos(conn: Connection, index: str) -> dict[str, int]:
    """Per index, the sum over primary shards of the highest sequence number: every write
    (index, update, delete) raises it, a refresh or a mapping change does not."""
    stats = conn.call(lambda: conn.client.indices.stats(
        index=index, metric="docs", level="shards"), "reading index stats").body
    return {
        name: sum(copy["seq_no"]["max_seq_no"] for copies in entry["shards"].values()
                  for copy in copies if copy["routing"]["primary"])
        for name, entry in sorted(stats["indices"].items())
    }


def ndjson(bodies: list[dict[str, Any]]) -> bytes:
    """An ``_msearch`` body: an empty header line (the index is in the URL), then the body."""
    try:
        from orjson import dumps
    except ImportError:
        return "".join("{}\n" + json.dumps(body) + "\n" for body in bodies).encode()
    return b"".join(b"{}\n" + dumps(body) + b"\n" for body in bodies)


# building ------------------------------------------------------------------------------
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

    client, index, settings = conn.client, conn.settings.es_index, conn.settings
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
            client, actions, chunk_size=BULK_CHUNK, max_retries=settings.es_max_retries,
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
