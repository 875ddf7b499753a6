"""A sampled run: which accepted log records it replays, and what its manifest records.

The sample is drawn from the accepted records (after validation and quarantine) in a first,
light pass over the log that keeps one 64-bit digest and one stratum label per record; the
run's own pass then replays only the picked records. Selection is by a hash of (seed,
``query_id``) (:mod:`auditor.sampling`), so consecutive nights pick the same query ids where
the log repeats them and paired comparisons keep working on the overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.logs import read_log
from auditor.records import LogRecord
from auditor.sampling import Design, Sample, id_digest, select, stratum_of, unit_values

if TYPE_CHECKING:
    from auditor.config import AuditSettings


def design(settings: AuditSettings) -> Design | None:
    """The sampling design the settings ask for, or None for a run over the whole log."""
    if not settings.sampled:
        return None
    return Design(seed=settings.seed, size=settings.sample, rate=settings.sample_rate,
                  stratify_by=settings.stratify_by)


def draw(settings: AuditSettings) -> Sample | None:
    """The sample of the accepted records of ``settings.log`` (None when not sampled)."""
    chosen = design(settings)
    if chosen is None or settings.log is None:
        return None
    digests: list[int] = []
    labels: list[str] = []
    for item in read_log(settings.log):
        if isinstance(item, LogRecord):
            digests.append(id_digest(item.query_id))
            labels.append(stratum_of(item.logged_at, item.metadata, chosen.stratify_by))
    values = unit_values(np.array(digests, dtype=np.uint64), chosen.seed)
    return select(values, labels, chosen)


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
