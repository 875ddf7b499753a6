"""Talking to Elasticsearch: the options a backend takes, a client, retries, error messages.

The client retries connection errors and timeouts itself (``max_retries``,
``retry_on_timeout``) with its equal-jitter exponential backoff
(``retry_backoff_base``/``retry_backoff_cap``). It would retry HTTP 429/502/503/504 at once,
without waiting, so those are retried here instead with full-jitter exponential backoff
(:meth:`Connection.call`); searches an ``_msearch`` answers with 429 are sent again
(:meth:`Connection.msearch`). Credentials live in the client only: messages are scrubbed
of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from auditor.backends.es_query import resolve_fields
from auditor.credentials import display_url
from auditor.errors import BackendError

if TYPE_CHECKING:
    from auditor.config import AuditSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 502, 503, 504)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
MODULES = {  # module or plugin → what its absence means here
    "analysis-common": "only the standard analyzer exists (no stemming, no stop words)",
    "lang-painless": "request templates that use scripts fail query by query",
    "rank-rrf": "no server-side RRF; hybrid fuses client-side, as it always does",
}
T = TypeVar("T")


@dataclass(frozen=True)
class ElasticsearchOptions:
    """What the Elasticsearch backend needs from the settings, and nothing else; the
    defaults are the settings' (build with :meth:`from_settings`)."""

    url: str
    index: str
    fields: dict[str, str]  # every role → its field (resolved over the defaults)
    template: str | None
    batch_size: int
    concurrency: int
    timeout_s: float
    max_retries: int
    verify_certs: bool
    ca_certs: Path | None
    username: SecretStr | None
    password: SecretStr | None
    api_key: SecretStr | None

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> ElasticsearchOptions:
        """The one place settings become Elasticsearch options (field map resolved)."""
        return cls(
            url=settings.es_url, index=settings.es_index,
            fields=resolve_fields(settings.es_fields), template=settings.es_template,
            batch_size=settings.batch_size, concurrency=settings.es_concurrency,
            timeout_s=settings.es_timeout_s, max_retries=settings.es_max_retries,
            verify_certs=settings.es_verify_certs, ca_certs=settings.es_ca_certs,
            username=settings.es_username, password=settings.es_password,
            api_key=settings.es_api_key,
        )


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


def _secrets(options: ElasticsearchOptions) -> list[str]:
    """Every credential string, longest first (so a key is scrubbed before its parts)."""
    found = [urlsplit(options.url).password or ""]
    for secret in (options.password, options.api_key):
        value = secret.get_secret_value() if secret is not None else ""
        found += [value, value.partition(":")[2]]  # an api key may be "id:key"
    if options.username is not None and options.username.get_secret_value():
        found.append(f"[{options.username.get_secret_value()}]")  # "for user [name]"
    return sorted({value for value in found if len(value) > 2}, key=len, reverse=True)


@dataclass(frozen=True)
class NodeInfo:
    version: str
    modules: tuple[str, ...]
    plugins: tuple[str, ...]

    def has(self, name: str) -> bool:
        return name in self.modules or name in self.plugins


class Connection:
    """A client for ``options``, its retries and its error messages."""

    def __init__(self, options: ElasticsearchOptions) -> None:
        from elasticsearch import Elasticsearch

        self.options = options
        self.index = options.index
        self.url = display_url(options.url)
        self.max_retries = options.max_retries
        self._secrets = _secrets(options)
        client: dict[str, Any] = {
            "request_timeout": options.timeout_s,
            "max_retries": options.max_retries,
            "retry_on_timeout": True,
            "retry_on_status": (),  # retried in call(), with backoff
            "retry_backoff_base": BACKOFF_BASE_S,
            "retry_backoff_cap": BACKOFF_CAP_S,
            "connections_per_node": max(10, 2 * options.concurrency),
        }
        if urlsplit(options.url).scheme == "https":  # the client refuses TLS options on http
            client["verify_certs"] = options.verify_certs
            if options.ca_certs is not None:
                client["ca_certs"] = str(options.ca_certs)
        if options.api_key is not None:
            client["api_key"] = options.api_key.get_secret_value()
        elif options.username is not None:
            password = options.password.get_secret_value() if options.password else ""
            client["basic_auth"] = (options.username.get_secret_value(), password)
        try:
            from elasticsearch.serializer import OrjsonSerializer

            client["serializer"] = OrjsonSerializer()
        except ImportError:
            pass
        try:
            self.client = Elasticsearch(options.url, **client)
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

    def search(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        """One ``_search`` of the index, retried as :meth:`call` does."""
        return self.call(lambda: self.client.search(index=self.index, **body), what).body

    def msearch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per body; searches the node rejected one by one (429) are sent again."""
        answers: list[dict[str, Any]] = [{} for _ in bodies]
        pending = list(range(len(bodies)))
        for attempt in range(self.max_retries + 1):
            retry = []
            for i, answer in zip(pending, self._send([bodies[i] for i in pending]), strict=True):
                answers[i] = answer
                if answer.get("status") == 429 and attempt < self.max_retries:
                    retry.append(i)
            if not retry:
                break
            time.sleep(backoff(attempt))
            pending = retry
        return answers

    def _send(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from elasticsearch import ApiError

        try:
            return self.call(
                lambda: self.client.msearch(index=self.index, body=ndjson(bodies)),
                "the search", passthrough=(400,),
            ).body["responses"]
        except ApiError as exc:  # one body the node cannot parse fails the whole request
            if len(bodies) > 1:
                return [answer for body in bodies for answer in self._send([body])]
            return [{"error": exc.body, "status": exc.meta.status}]

    def missing_index(self) -> BackendError:
        return BackendError(
            f"index {self.index} does not exist at {self.url}: build it with "
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

        url, index = self.url, self.index
        if isinstance(exc, ConnectionTimeout):
            text = (f"Elasticsearch at {url} did not answer {what} within "
                    f"{self.options.timeout_s:g}s ({self.max_retries} retries): raise "
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


