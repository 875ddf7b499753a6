"""A sampled run: which accepted log records it replays, and what its manifest records.

What a sampled run checks: every line of the log, in full, once. The first pass validates
each record exactly as a run over the whole log does (so the same lines are quarantined, the
counts are the same, and N is the number of accepted records) but keeps only one 64-bit
digest, one stratum label and the line number per accepted record, and the quarantine
entries. The sample is drawn from those; the second pass reads only the picked lines (a
JSONL log's other lines are not parsed again) and replays them. Selection is by a hash of
(seed, ``query_id``) (:mod:`auditor.sampling`), so consecutive nights pick the same query
ids where the log repeats them and paired comparisons keep working on the overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.logs import LoadCounts, read_log, read_numbered, read_picked
from auditor.records import LogRecord, QuarantineEntry
from auditor.sampling import Design, Sample, id_digest, select, stratum_of, unit_values

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
    return sample, itertools.chain(quarantined, read_picked(settings.log, picked))


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
    digests: list[int] = []
    labels: list[str] = []
    lines: list[int] = []
    quarantined: list[QuarantineEntry] = []
    for line, item in read_numbered(settings.log, counts):
        if isinstance(item, LogRecord):
            digests.append(id_digest(item.query_id))
            labels.append(stratum_of(item.logged_at, item.metadata, chosen.stratify_by))
            lines.append(line)
        else:
            quarantined.append(item)
    values = unit_values(np.array(digests, dtype=np.uint64), chosen.seed)
    return select(values, labels, chosen), np.array(lines, dtype=np.int64), quarantined


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
