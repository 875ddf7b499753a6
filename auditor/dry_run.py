"""Cost up front (``auditor run --dry-run``): what a run of this log would take, before it runs.

The log is read and checked as a real run reads it (quarantine counted the same way);
queries and factual answer sentences are counted, and their texts looked up in the
embedding cache (read only). A calibration batch (the first ``CALIBRATION`` queries) goes
through the run's own pipeline: replay, trace, ablations, diagnoses, per-query tables, and
an append into a throwaway store in a temporary directory. Nothing reaches the results
store. The time per query of that batch, times the number of queries, plus the setup
(judgments, model and index), is the expected wall time; ``--budget`` turns it round into
the largest ``--sample`` that fits.

With ``--sample``/``--sample-rate`` the dry run draws the sample the run would draw (the same
seed, strata and first-pass checks: ``auditor.sampled``): texts, calibration and expected
time are the sample's, and it says "sampled: n of N".
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from auditor.backends import needs_vectors
from auditor.config import AuditSettings
from auditor.embed import HashEncoder, MiniLMEncoder, embedding_key
from auditor.errors import ConfigError
from auditor.logs import LoadCounts
from auditor.records import LogRecord, QuarantineEntry
from auditor.sampled import log_items
from auditor.sentences import is_factual, split_sentences
from auditor.store import Store

CALIBRATION = 20  # queries timed through the real pipeline
LOOKUP_CHUNK = 10_000  # cache keys looked up per query to the store
_BUDGET = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
MODEL_IDS = {"minilm": MiniLMEncoder.model_id, "hash": HashEncoder.model_id}


@dataclass(frozen=True)
class Calibration:
    """What the first queries of the log cost through the run's pipeline."""

    queries: int
    setup_s: float  # judgments, encoder and index, once per run
    seconds: float  # the batch: replay, trace, diagnose, tables, append
    encoded: int  # texts the batch embedded (queries, sentences, passages, windows)
    primary_encoded: int  # of them, its queries and answer sentences

    @property
    def per_query_s(self) -> float:
        return self.seconds / self.queries if self.queries else 0.0


@dataclass(frozen=True)
class DryRun:
    """The expected cost of ``auditor run`` on this log with these settings."""

    log: str
    read: int
    accepted: int
    quarantined: int
    blank: int
    skipped: int
    answer_sentences: int
    texts: int  # distinct query and sentence texts the run embeds
    texts_not_cached: int
    read_s: float  # reading and checking the log
    calibration: Calibration | None
    expected_s: float
    expected_embeddings: int
    budget_s: float | None = None
    suggested_sample: int | None = None
    sampled: str | None = None  # "sampled: n of N" when the run would audit a sample
    queries: int | None = None  # the queries the run audits: the sample's n, else accepted

    def as_dict(self) -> dict:
        data = asdict(self)
        if self.calibration is not None:
            data["calibration"]["per_query_s"] = self.calibration.per_query_s
        return data


def parse_budget(text: str) -> float:
    """``90m``, ``2h``, ``1h30m``, ``45s`` → seconds; anything else is one sentence."""
    match = _BUDGET.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ConfigError(f"--budget takes a duration such as 90m, 2h or 1h30m, not {text!r}")
    seconds = (3600 * int(match["h"] or 0) + 60 * int(match["m"] or 0) + int(match["s"] or 0))
    if seconds <= 0:
        raise ConfigError(f"--budget must be longer than zero, not {text!r}")
    return float(seconds)


def suggest_sample(budget_s: float, setup_s: float, per_query_s: float, queries: int) -> int:
    """The most queries a run can audit within ``budget_s`` (at most the whole log; 0 when
    the setup alone takes longer)."""
    if per_query_s <= 0:
        return queries
    return max(0, min(queries, math.floor((budget_s - setup_s) / per_query_s)))


def dry_run(settings: AuditSettings, budget_s: float | None = None,
            calibration: int = CALIBRATION) -> DryRun:
    """Read the log, count, look up the cache and time a calibration batch; store nothing."""
    if settings.log is None:
        raise ConfigError("no query log given: set `log` in audit.toml or pass --log")
    started = time.perf_counter()
    load = LoadCounts()
    sample, items = log_items(settings, load)  # the run's own read: with a sample, its draw
    records = [item for item in items if not isinstance(item, QuarantineEntry)]
    read_s = time.perf_counter() - started
    population = sample.population if sample is not None else len(records)
    sentences = {r.query_id: _sentences(r) for r in records} if settings.trace else {}
    texts = _texts(records, sentences, settings)
    missing = len(texts) - _cached(Store(settings.store), list(texts))
    measured = _calibrate(settings, records[:calibration], texts) if records else None
    per_query = measured.per_query_s if measured else 0.0
    setup = measured.setup_s if measured else 0.0
    extra = (measured.encoded - measured.primary_encoded) / measured.queries if measured else 0
    return DryRun(
        log=str(settings.log), read=load.read, accepted=load.accepted,
        quarantined=load.quarantined, blank=load.blank, skipped=load.skipped,
        answer_sentences=sum(len(group) for group in sentences.values()), texts=len(texts),
        texts_not_cached=missing, read_s=read_s, calibration=measured,
        expected_s=read_s + setup + per_query * len(records),
        expected_embeddings=missing + round(extra * len(records)),
        budget_s=budget_s,
        suggested_sample=None if budget_s is None else suggest_sample(
            budget_s, read_s + setup, per_query, population),
        sampled=None if sample is None else sample.describe(), queries=len(records),
    )


def _sentences(record: LogRecord) -> list[str]:
    """The answer's factual sentences: the ones a run traces and embeds."""
    return [s.text for s in split_sentences(record.answer or "") if is_factual(s)]


def _texts(records: list[LogRecord], sentences: dict[str, list[str]],
           settings: AuditSettings) -> dict[str, str]:
    """Cache key → text of every distinct query and answer sentence the run embeds: the
    queries when the mode (or an ablation) searches by vector, the sentences when answers
    are traced."""
    model = MODEL_IDS[settings.encoder]
    wanted = [r.query for r in records] if needs_vectors(settings) else []
    wanted += [text for group in sentences.values() for text in group]
    return {embedding_key(model, text): text for text in wanted}


def _cached(store: Store, keys: list[str]) -> int:
    """How many of ``keys`` the store's embedding cache holds (read only)."""
    return sum(len(store.cached_keys(keys[i:i + LOOKUP_CHUNK]))
               for i in range(0, len(keys), LOOKUP_CHUNK))


def _calibrate(settings: AuditSettings, records: list[LogRecord], texts: dict[str, str]
               ) -> Calibration:
    """The first queries through :class:`auditor.audit.Audit` as a run sends them, their
    tables appended to a throwaway store; the encoder reads the real cache but its new
    vectors are dropped."""
    from auditor.audit import Audit
    from auditor.metrics.per_query import batch_tables

    started = time.perf_counter()
    audit = Audit(settings)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="auditor-dry-run-") as scratch:
        result = audit.batch(0, records)
        tables = batch_tables("dry-run", result, settings)
        tables["embeddings"] = pending = audit.new_embeddings()
        Store(Path(scratch) / "calibration.duckdb").append(tables)
    seconds = time.perf_counter() - started
    encoded = 0 if pending is None else pending.num_rows
    keys = set() if pending is None else set(pending.column("key").to_pylist())
    return Calibration(queries=len(records), setup_s=setup_s, seconds=seconds, encoded=encoded,
                       primary_encoded=len(keys & texts.keys()))


def describe(result: DryRun) -> list[str]:
    """What a person reads: counts, cache, calibration, expectation and the budget's sample."""
    lines = [
        f"dry run · nothing stored · log {result.log}",
        f"{result.accepted:,} queries ({result.read:,} records read: {result.quarantined:,} "
        f"quarantined, {result.blank:,} blank, {result.skipped:,} skipped) · "
        f"{result.answer_sentences:,} answer sentences",
        f"embedding cache: {result.texts_not_cached:,} of {result.texts:,} query and sentence "
        "texts not cached",
    ]
    if result.sampled is not None:
        lines.insert(2, f"{result.sampled} queries: the answer sentences, texts, calibration "
                        "and expected time below are the sample's")
    cal = result.calibration
    if cal is not None:
        lines.append(f"calibration: {cal.queries} queries in {_duration(cal.seconds)} "
                     f"({cal.per_query_s:.3f} s per query; setup {_duration(cal.setup_s)}, "
                     f"log read {_duration(result.read_s)})")
    lines.append(f"expected: about {_duration(result.expected_s)} wall time and "
                 f"{result.expected_embeddings:,} embeddings for the queries (the corpus "
                 "pass and the reports come on top)")
    if result.budget_s is not None and result.suggested_sample is not None:
        budget = _duration(result.budget_s)
        if result.suggested_sample >= result.accepted:
            lines.append(f"budget {budget}: the whole log fits (no --sample needed)")
        elif result.suggested_sample == 0:
            lines.append(f"budget {budget}: reading the log and the setup alone take longer")
        else:
            lines.append(f"budget {budget}: --sample {result.suggested_sample} fits "
                         f"(of {result.accepted:,} queries)")
    return lines


def _duration(seconds: float) -> str:
    """``4.2 s``, ``12 min``, ``3 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
