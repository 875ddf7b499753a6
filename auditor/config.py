"""Settings: one flat namespace, read once by the CLI and passed down.

Every setting has one name everywhere: the key in ``audit.toml``, the environment variable
``AUDITOR_<NAME>`` and the CLI flag ``--name``. Precedence: flags > environment > file >
defaults. Secrets (Elasticsearch credentials) are ``SecretStr`` and only come from the
environment or the file; they are never printed and never stored with a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from auditor.credentials import split_userinfo
from auditor.errors import ConfigError
from auditor.metrics.registry import check_metric_name
from auditor.records import MODE_SYNONYMS, Level, Mode

DEFAULT_CONFIG = Path("audit.toml")
SECRET_FIELDS = ("es_username", "es_password", "es_api_key", "webhook_url")

GateKind = Literal["min", "max", "max_drop"]

__all__ = ["AuditSettings", "ConfigError", "Gate", "check_doc_url", "load_settings"]


class Gate(BaseModel):
    """One gate from ``audit.toml`` (``[[gates]]``): exactly one of min, max, max_drop."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    alpha: float = 0.05

    _known_metric = field_validator("metric")(check_metric_name)  # misspelt: fail at load

    @model_validator(mode="after")
    def _one_limit(self) -> Gate:
        given = [k for k in ("min", "max", "max_drop") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"gate on {self.metric} needs exactly one of min, max, max_drop (got "
                f"{', '.join(given) or 'none'})"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"gate on {self.metric}: alpha must be between 0 and 1")
        return self

    @property
    def kind(self) -> GateKind:
        return "min" if self.min is not None else "max" if self.max is not None else "max_drop"

    @property
    def threshold(self) -> float:
        value = {"min": self.min, "max": self.max, "max_drop": self.max_drop}[self.kind]
        assert value is not None
        return value

    @property
    def name(self) -> str:
        if self.kind == "min":
            return f"{self.metric} >= {self.threshold:.3f}"
        if self.kind == "max":
            return f"{self.metric} <= {self.threshold:.3f}"
        return f"{self.metric} drop <= {self.threshold:.3f} (significant at {self.alpha:g})"


DEFAULT_GATES = [Gate(metric="recall@10", max_drop=0.02), Gate(metric="ndcg@10", max_drop=0.02)]


class AuditSettings(BaseSettings):
    """What an audit run needs. See the README's configuration reference."""

    model_config = SettingsConfigDict(env_prefix="AUDITOR_", extra="forbid")

    # what to audit
    log: Path | None = Field(default=None, description="query log (JSONL, Parquet, CSV, BEIR)")
    qrels: Path | None = Field(default=None, description="judgments (TREC or BEIR qrels)")
    store: Path = Field(default=Path(".auditor/audit.duckdb"), description="DuckDB results file")
    # how to replay
    backend: Literal["embedded", "elasticsearch"] = "embedded"
    mode: Mode = "bm25"
    k: list[int] = Field(default=[1, 5, 10, 20, 100], description="cut-offs for metrics")
    depth: int = Field(default=100, ge=1, le=10_000, description="hits fetched per query")
    store_depth: int | None = Field(
        default=None, ge=1, description="hits stored per query (default: depth; >= diagnose_k)")
    level: Level = "doc"
    batch_size: int = Field(default=128, ge=1, le=10_000)
    flush_seconds: float = Field(
        default=10.0, ge=0, description="longest the stored rows lag a running audit")
    # where the per-query work runs: this process, or a pool of Ray actors
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(default=None, description="Ray cluster (host:port)")
    workers: int = Field(default=2, ge=1, le=4096, description="Ray actors")
    # evidence and diagnosis
    trace: bool = Field(default=True, description="trace logged answers to their sources")
    ablations: bool = Field(default=True, description="replay misses in every mode for causes")
    self_probe: bool = Field(default=True, description="probe every document with its title")
    diagnose_k: int = Field(default=10, ge=1, description="cut-off at which misses are diagnosed")
    slow_ms: float = Field(default=1000.0, gt=0, description="latency budget per query")
    scatter_limit: int = Field(default=3, ge=1, description="documents an answer may need")
    drift_overlap: float = Field(default=0.5, ge=0, le=1)
    crowded_share: float = Field(default=0.5, gt=0, le=1)
    duplicate_jaccard: float = Field(default=0.9, gt=0, le=1)
    low_term_overlap: float = Field(default=0.2, ge=0, le=1)
    high_term_overlap: float = Field(default=0.5, ge=0, le=1)
    # embedded backend
    index: Path = Field(default=Path(".auditor/index"), description="embedded index directory")
    corpus: Path | None = Field(default=None, description="corpus to index (BEIR corpus.jsonl)")
    encoder: Literal["minilm", "hash"] = "minilm"
    chunk_words: int = Field(default=0, ge=0, description="split documents into ~N-word chunks")
    # Elasticsearch backend
    es_url: str = "http://127.0.0.1:9200"
    es_index: str = "auditor"
    es_username: SecretStr | None = None
    es_password: SecretStr | None = None
    es_api_key: SecretStr | None = None
    es_verify_certs: bool = True
    es_ca_certs: Path | None = None
    es_timeout_s: float = Field(default=30.0, gt=0)
    es_max_retries: int = Field(default=3, ge=0)
    es_concurrency: int = Field(default=2, ge=1, le=16)
    es_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "chunk_id": "chunk_id",
            "doc_id": "doc_id",
            "title": "title",
            "text": "text",
            "vector": "embedding",
        }
    )
    es_template: str | None = Field(
        default=None,
        description="production request body (JSON) with {{query}} and {{query_vector}}",
    )

    # nightly: baseline, gates, reports, alerts, schedule
    baseline: str | None = Field(
        default="last-passing",
        description="compare with: last | last-passing | a run id | none")
    baseline_min_shared: float = Field(
        default=0.5, gt=0, le=1,
        description="share of a run's queries a baseline must also have answered (or the "
                    "same log), else no comparable baseline")
    require_baseline: bool = Field(
        default=False, description="a gate that could not be evaluated fails the run (exit 1)")
    gates: list[Gate] = Field(
        default_factory=lambda: list(DEFAULT_GATES),
        description="[[gates]] tables: metric and one of min, max, max_drop (with alpha)")
    reports: Path | None = Field(
        default=Path(".auditor/reports"), description="directory for each run's reports")
    webhook_url: SecretStr | None = Field(
        default=None, description="POST a JSON alert here when a gate fails (Slack-compatible)")
    cron: str = Field(default="0 2 * * *", description="schedule for `auditor schedule`")
    doc_url: str | None = Field(
        default=None, description="link to a document's source, e.g. https://wiki/{doc_id}")
    # sampling: audit part of the log, every mean then comes with a 95% CI
    sample: int | None = Field(default=None, ge=1, description="audit N queries of the log")
    sample_rate: float | None = Field(
        default=None, gt=0, le=1, description="audit this share of the log's queries")
    stratify_by: str | None = Field(
        default=None, description="sample strata: a metadata key, or day / hour of logged_at")
    seed: int = Field(default=0, description="sample seed: the same seed picks the same queries")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_synonyms(cls, value: Any) -> Any:
        return MODE_SYNONYMS.get(value, value) if isinstance(value, str) else value

    @field_validator("baseline")
    @classmethod
    def _no_baseline(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "none") else value

    @field_validator("doc_url")
    @classmethod
    def _doc_url_is_a_web_link(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_doc_url(value)

    @model_validator(mode="after")
    def _credentials_out_of_es_url(self) -> AuditSettings:
        """``http://user:pw@host`` → ``es_username``/``es_password`` (secrets) and a bare
        URL: the URL is printed and stored with every run, the secrets never are. Explicit
        credential settings win over those in the URL."""
        userinfo, clean = split_userinfo(self.es_url)
        if userinfo is None:
            return self
        user, has_password, password = userinfo.partition(":")
        if self.es_username is None and self.es_api_key is None and user:
            self.es_username = SecretStr(unquote(user))
            if has_password and self.es_password is None:
                self.es_password = SecretStr(unquote(password))
        self.es_url = clean
        return self

    @model_validator(mode="after")
    def _one_sample_size(self) -> AuditSettings:
        if self.sample is not None and self.sample_rate is not None:
            raise ValueError("sample and sample_rate (--sample N, --sample-rate r) exclude "
                             "each other: give one")
        if self.stratify_by is not None and not self.sampled:
            raise ValueError("stratify_by needs a sample: add --sample N or --sample-rate r")
        return self

    @model_validator(mode="after")
    def _store_depth_covers_diagnosis(self) -> AuditSettings:
        if self.store_depth is not None and self.store_depth < self.diagnose_k:
            raise ValueError(f"store_depth ({self.store_depth}) is below diagnose_k "
                             f"({self.diagnose_k}): the stored hits must reach the cut-off "
                             "misses are diagnosed at; raise store_depth or lower diagnose_k")
        return self

    @property
    def kept_hits(self) -> int:
        """Hits stored per query: ``store_depth``, never more than were fetched."""
        return min(self.store_depth or self.depth, self.depth)

    @property
    def sampled(self) -> bool:
        """Whether the run audits a sample of the log (see auditor/sampled.py)."""
        return self.sample is not None or self.sample_rate is not None

    @field_validator("k")
    @classmethod
    def _k_positive_sorted(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError("k must be a non-empty list of positive cut-offs")
        return sorted(set(value))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def snapshot(self) -> dict[str, Any]:
        """The settings as stored with a run: JSON-safe, secrets left out."""
        data = self.model_dump(mode="json", exclude=set(SECRET_FIELDS))
        data["es_credentials"] = "set" if any(getattr(self, f) for f in SECRET_FIELDS[:3]) else None
        data["webhook"] = "set" if self.webhook_url else None
        return data


def check_doc_url(template: str) -> str:
    """A ``doc_url`` template as given, if it is an http(s) link holding ``{doc_id}``.

    Anything else (``javascript:``, ``data:``, a relative path) is refused: the template
    becomes a link people click in the dashboard and the reports.
    """
    from urllib.parse import urlsplit

    text = template.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"doc_url {template[:80]!r} must be an http:// or https:// link, "
                         "e.g. https://wiki.example.com/{doc_id}")
    if "{doc_id}" not in text:
        raise ValueError(f"doc_url {template[:80]!r} must hold {{doc_id}}, where the "
                         "document id goes")
    return text


def load_settings(config: Path | None = None, **overrides: Any) -> AuditSettings:
    """Settings from ``config`` (default ``audit.toml`` if present), env, and overrides.

    ``None`` overrides are ignored so CLI flags that were not given do not mask the file.
    """
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass --config with a valid path")

    class _FromFile(AuditSettings):
        model_config = SettingsConfigDict(toml_file=path)

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = _FromFile(**given)
    except ValidationError as exc:
        where = f"config {path}" if path else "settings"
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"config {path}: {exc}") from None
    return AuditSettings.model_validate(settings.model_dump())


def _problem(error: Any) -> str:
    """One validation error as ``field: message`` (a check across fields has no field)."""
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
