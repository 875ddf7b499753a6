"""A sampled run: which accepted log records it replays, and what its manifest records.

What a sampled run checks. The first pass reads every line of the log once. Of a JSONL log
it checks only what the draw needs (``LogKey``, through :func:`auditor.logs.read_keys`):
valid JSON, a usable ``query_id`` not seen before, a query, and the stratum's fields (none
without ``stratify_by``: not the timestamp, not the metadata), at about a tenth of the CPU
of a whole record. A line failing that is quarantined and counted exactly as a run over
the whole log does it. The pass keeps each record's id, stratum label and line number, and
the sample is drawn from their digests (:func:`auditor.sampling.id_digests`). The second pass
reads only the picked lines (the others are not parsed again), checks them in full and
replays them. A picked line failing there is quarantined then and stops counting as
accepted: the estimator leaves it out, as it leaves out a query whose metric is undefined.
So N counts the lines with a usable id and query. A defect elsewhere in a line the sample
did not pick is not seen; a run over the whole log finds it. Parquet, CSV and span logs are
checked in full on the first pass.

Selection is by a hash of (seed, ``query_id``) (:mod:`auditor.sampling`), so consecutive
nights pick the same query ids where the log repeats them and paired comparisons keep
working on the overlap.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ConfigDict, Field, create_model

from auditor.line_keys import Keyed
from auditor.logs import KNOWN_FIELDS, LoadCounts, read_keys, read_log, read_picked
from auditor.records import LoggedAt, LogKey, LogRecord, QuarantineEntry
from auditor.sampling import (
    NO_STRATUM,
    TIME_STRATA,
    Design,
    Sample,
    id_digests,
    select,
    stratum_of,
    unit_values,
)

if TYPE_CHECKING:
    from auditor.config import AuditSettings


def design(settings: AuditSettings) -> Design | None:
    """The sampling design the settings ask for, or None for a run over the whole log."""
    if not settings.sampled:
        return None
    return Design(seed=settings.seed, size=settings.sample, rate=settings.sample_rate,
                  stratify_by=settings.stratify_by)


def log_items(settings: AuditSettings, counts: LoadCounts
              ) -> tuple[Sample | None, Iterator[LogRecord | QuarantineEntry]]:
    """The sample (None for the whole log) and the items a run reads: every quarantine
    entry, and the accepted records it replays in log order. ``counts`` counts every line
    (for a sample, before this returns)."""
    assert settings.log is not None
    drawn = _drawn(settings, counts)
    if drawn is None:
        return None, read_log(settings.log, counts)
    sample, lines, quarantined = drawn
    picked = frozenset(lines[sample.picked].tolist())
    return sample, itertools.chain(quarantined, _checked(read_picked(settings.log, picked),
                                                         counts))


def _checked(items: Iterator[LogRecord | QuarantineEntry], counts: LoadCounts
             ) -> Iterator[LogRecord | QuarantineEntry]:
    """The picked lines, checked in full: one that fails is quarantined now and no longer
    counts as accepted."""
    for item in items:
        if isinstance(item, QuarantineEntry):
            counts.accepted -= 1
            counts.quarantine(item)
        yield item


def draw(settings: AuditSettings) -> Sample | None:
    """The sample of the accepted records of ``settings.log`` (None when not sampled)."""
    drawn = _drawn(settings, LoadCounts())
    return None if drawn is None else drawn[0]


def _drawn(settings: AuditSettings, counts: LoadCounts
           ) -> tuple[Sample, np.ndarray, list[QuarantineEntry]] | None:
    """The first pass: the sample, each accepted record's line, the quarantine entries."""
    chosen = design(settings)
    if chosen is None or settings.log is None:
        return None
    by = chosen.stratify_by
    ids: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    quarantined: list[QuarantineEntry] = []
    for line, item in read_keys(settings.log, counts, log_key(by)):
        if isinstance(item, QuarantineEntry):
            quarantined.append(item)
            continue
        ids.append(item.query_id)
        if by is not None:
            labels.append(_stratum(item, by))
        lines.append(line)
    values = unit_values(id_digests(ids), chosen.seed)
    strata = labels if by is not None else np.full(len(ids), NO_STRATUM)
    return select(values, strata, chosen), np.array(lines, dtype=np.int64), quarantined


@functools.cache
def log_key(stratify_by: str | None) -> type[LogKey]:
    """What the first pass reads of a line: ``LogKey``, and the fields a stratum is made of.
    That is ``logged_at`` for a time stratum; for any other key, that key of the metadata,
    and a top-level field of that name (a whole read merges a field beyond the known ones
    into the metadata). The metadata's other keys are not parsed."""
    if stratify_by is None:
        return LogKey
    if stratify_by in TIME_STRATA:
        return create_model("LogKeyAt", __base__=LogKey, logged_at=(LoggedAt, None))
    value = (Any, Field(default=None, validation_alias=stratify_by))
    keyed = create_model("MetadataKey", __config__=ConfigDict(extra="ignore"), value=value)
    fields: dict[str, Any] = {"metadata": (keyed, Field(default_factory=keyed))}
    if stratify_by not in KNOWN_FIELDS:
        fields["top_level"] = value
    return create_model("LogKeyBy", __base__=LogKey, **fields)


def _stratum(item: Keyed | LogRecord, by: str) -> str:
    """The stratum of a record read whole or of a line read as ``log_key(by)``; the same for
    both, as a whole read merges a top-level extra into the metadata, the metadata's own
    key first."""
    if isinstance(item, LogRecord):
        return stratum_of(item.logged_at, item.metadata, by)
    key = item.key
    assert key is not None, "a line read for a stratum keeps its fields"
    if by in TIME_STRATA:
        return stratum_of(key.logged_at, None, by)
    value = key.metadata.value
    if "value" not in key.metadata.model_fields_set and "top_level" in key.model_fields_set:
        value = key.top_level
    return stratum_of(None, {by: value}, by)


def only_sampled(records: Iterable[LogRecord], sample: Sample | None) -> Iterator[LogRecord]:
    """The accepted records the sample picked, in log order (all of them without a sample).

    Positions count accepted records, as :func:`draw` did over the same file."""
    if sample is None:
        yield from records
        return
    picked = sample.picked
    for position, record in enumerate(records):
        if position < picked.size and picked[position]:
            yield record


def manifest_entry(sample: Sample) -> dict[str, Any]:
    """``sample`` as the run's manifest records it: strata as ``[n_h, N_h]``."""
    chosen = sample.design
    return {
        "n": sample.n,
        "N": sample.population,
        "rate": sample.n / sample.population if sample.population else None,
        "seed": chosen.seed,
        "stratify_by": chosen.stratify_by,
        "requested": {"sample": chosen.size, "sample_rate": chosen.rate},
        "strata": {name: [drawn, size] for name, (size, drawn) in sample.strata.items()},
    }


def sample_sentence(sample: dict[str, Any]) -> str:
    """What a reader of a sampled run's summary or report must know first (``sample`` as
    :meth:`auditor.store.read.sample.SampledRun.as_json` gives it)."""
    strata = f", stratified by {sample['stratify_by']}" if sample.get("stratify_by") else ""
    return (f"This run is {sample['sampled']} queries of the log (seed {sample['seed']}"
            f"{strata}): each mean is the stratified estimate of the whole log's, with its "
            "95% CI.")
