"""One audit run: log → replay → trace → diagnose → metrics → store, batch by batch.

Memory stays bounded by one batch (plus the judgments): each batch is replayed, traced,
diagnosed, scored and written before the next is read. The corpus pass (coverage and
self-retrievability) runs once at the end, from what the store holds.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from auditor import __version__
from auditor.ablations import gather
from auditor.backends import Backend, BackendError, needs_vectors, open_backend
from auditor.cases import QueryCase, Thresholds
from auditor.config import AuditSettings, ConfigError
from auditor.diagnose import diagnose
from auditor.embed import CachedEncoder, CacheStats
from auditor.gaps import measure_gaps
from auditor.judging import Labels, judged_by_query, run_labels
from auditor.logs import LoadCounts
from auditor.metrics.per_query import BatchResult, batch_tables, judgments_for, quarantine_table
from auditor.records import Hit, LogRecord, QuarantineEntry
from auditor.replay import Replayed, Replayer, batched
from auditor.run_record import (
    RunCounts,
    final_status,
    manifest,
    new_run_id,
)
from auditor.run_record import resume_settings as resume_settings
from auditor.sampled import log_items
from auditor.sampling import Sample
from auditor.store import Pending, RunStatus, Store
from auditor.trace import GROUNDED, AnswerTrace, Tracer, sentence_support

Progress = Callable[[int], None]
# Runs the accepted records' batches somewhere else (auditor/distributed: on Ray actors) and
# stores them, instead of the loop below: (audit, run id, records, counts, quarantined,
# progress); it updates ``counts`` in place with every stored batch.
Executor = Callable[["Audit", str, Iterator[LogRecord], RunCounts, list[QuarantineEntry],
                     Progress | None], None]


def thresholds(settings: AuditSettings) -> Thresholds:
    return Thresholds.from_settings(settings)


class Audit:
    """The pieces one run needs, built once."""

    def __init__(self, settings: AuditSettings, backend: Backend | None = None,
                 cache: Any = None) -> None:
        """``cache`` stands in for the store's embedding cache (a Ray worker's snapshot)."""
        if settings.log is None:
            raise ConfigError("no query log given: set `log` in audit.toml or pass --log")
        self.settings = settings
        self.store = Store(settings.store)
        # the qrels, read once: the judgments, the quarantined lines, the manifest's version
        self.labels: Labels | None = run_labels(settings.qrels) if settings.qrels else None
        self.judgments = judged_by_query(self.labels[0]) if self.labels else {}
        self.bad_qrels: list[QuarantineEntry] = self.labels[3] if self.labels else []
        self.encoder = self._encoder(backend, cache or self.store)
        self.backend = backend or open_backend(settings, self.encoder)
        self.replayer = Replayer(self.backend, settings.mode, settings.depth)
        self.tracer = self._tracer() if settings.trace else None
        self.thresholds = thresholds(settings)
        self.corpus_fault: str | None = None

    @property
    def fault(self) -> str | None:
        """Why the index failed during the run (a whole batch, or the corpus pass), if it did."""
        return self.replayer.fault or self.corpus_fault

    def _encoder(self, backend: Backend | None, cache: Any) -> CachedEncoder | None:
        """The model behind the store's embedding cache, when anything will embed."""
        if not (self.settings.trace or (backend is None and needs_vectors(self.settings))):
            return None
        return CachedEncoder.named(self.settings.encoder, cache)  # loads on a miss

    def _tracer(self) -> Tracer | None:
        from auditor.evidence import SupportScorer

        assert self.encoder is not None
        return Tracer(self.backend, SupportScorer(self.encoder), self.settings.k)

    def new_embeddings(self) -> pa.Table | None:
        """Vectors encoded since the last batch, to store with it. The scorer's own memo
        is dropped too: the store now holds them, and memory stays bounded by a batch."""
        if self.encoder is None:
            return None
        if self.tracer is not None:
            self.tracer.scorer.cache.clear()
        return self.encoder.take_pending()

    def batch(self, first_seq: int, records: list[LogRecord]) -> BatchResult:
        """One row per record, always: when the index fails the batch (in the replay or
        while its answers are traced and diagnosed), every query of it is an error row."""
        rows = self.replayer.replay(records)
        judged = {r.query_id: judgments_for(r, self.judgments) for r in records}
        if all(row.status == "error" for row in rows):
            return BatchResult(first_seq, rows, judged, {}, {}, [])
        try:
            return self._measure(first_seq, rows, judged)
        except BackendError as exc:
            lost = self.replayer.lost(records, f"the index failed while the batch was "
                                               f"diagnosed: {exc}")
            return BatchResult(first_seq, lost, judged, {}, {}, [])

    def _measure(self, first_seq: int, rows: list[Replayed],
                 judged: dict[str, dict[str, int]]) -> BatchResult:
        answered = [row for row in rows if row.status != "error"]
        has_answers = any(row.record.answer for row in answered)
        traces = self.tracer.trace(answered) if self.tracer and has_answers else {}
        served = self._served(answered)
        cases = self._cases(rows, judged, traces, served)
        ablated: dict[str, dict[str, list[Hit]]] = {}
        if self.settings.ablations:  # gather skips the cases in error
            found = gather(cases, self.backend, self.settings.mode, self.thresholds,
                           template=self.settings.mode == "template")
            cases = [case.with_findings(f) for case, f in zip(cases, found, strict=True)]
            ablated = {case.query_id: {m: hits for m, hits in f.ablations.items()
                                       if m != self.settings.mode}
                       for case, f in zip(cases, found, strict=True) if f.ablations}
        diagnoses = [d for case in cases for d in diagnose(case, self.thresholds)]
        return BatchResult(first_seq, rows, judged, served, traces, diagnoses, ablated)

    def _served(self, rows: list[Replayed]) -> dict[str, list[str]]:
        """Served ids at the run's level (chunk ids map to their documents at doc level)."""
        served = {row.record.query_id: row.record.served_ids() for row in rows
                  if row.record.served is not None}
        if self.settings.level == "chunk":
            return served
        ids = sorted({i for values in served.values() for i in values})
        known = self.backend.fetch(ids) if ids else {}
        return {q: list(dict.fromkeys(known[i]["doc_id"] if i in known else i for i in values))
                for q, values in served.items()}

    def _cases(self, rows: list[Replayed], judged: dict[str, dict[str, int]],
               traces: dict[str, AnswerTrace], served: dict[str, list[str]]) -> list[QueryCase]:
        level = self.settings.level
        targets: dict[str, tuple[list[str], bool]] = {}
        for row in rows:
            query_id = row.record.query_id
            relevant = sorted(d for d, g in judged[query_id].items() if g >= 1)
            trace = traces.get(query_id)
            if relevant:
                targets[query_id] = (relevant, False)
            elif trace is not None:
                silver = (trace.evidence_docs() if level == "doc" else sorted(
                    {s.best_chunk_id for s in trace.sentences
                     if s.status in GROUNDED and s.best_chunk_id}))
                targets[query_id] = (silver, True)
            else:
                targets[query_id] = ([], False)
        every = sorted({t for ids, _ in targets.values() for t in ids})
        present = dict(zip(every, self.backend.contains(every, level), strict=True)) if every \
            else {}
        cases = []
        for row in rows:
            query_id = row.record.query_id
            ids, silver = targets[query_id]
            trace = traces.get(query_id)
            cases.append(QueryCase(
                query_id=query_id, query=row.record.query, status=row.status, hits=row.hits,
                depth=self.settings.depth, mode=self.settings.mode, level=level,
                targets=ids, silver=silver, missing_targets=[t for t in ids if not present[t]],
                served=served.get(query_id), replay_latency_ms=row.replay_latency_ms,
                served_latency_ms=row.record.served_latency_ms,
                sentences=sentence_support(trace),
                scatter_docs=trace.doc_cover.size if trace else None,
                scatter_chunks=trace.chunk_cover.size if trace else None,
            ))
        return cases


def run_audit(
    settings: AuditSettings,
    progress: Progress | None = None,
    backend: Backend | None = None,
    resume: str | None = None,
    executor: Executor | None = None,
) -> tuple[str, RunStatus]:
    """Audit ``settings.log``; returns the run id and its final status.

    ``resume`` continues that run after its last stored batch (see :func:`resume_settings`);
    ``executor`` runs the batches elsewhere (``auditor.distributed.run_distributed``).
    """
    audit = Audit(settings, backend)
    # The index, the judgments and the model live for the whole run; without this the
    # collector walks them again and again (it tripled client CPU per query in
    # bench/elasticsearch.py). Unfrozen when the run ends.
    gc.freeze()
    try:
        run_id, status = _run(audit, settings, progress, resume, executor)
    finally:
        gc.unfreeze()
    if audit.fault is not None:
        raise _stopped_early(audit, settings, run_id, status, audit.fault)
    return run_id, status


class RunStoppedEarly(BackendError):
    """The index failed during the run. Everything is stored (an ``error`` row for every
    query it did not answer), the verdict and the reports are written; the caller exits as
    on any other index error (exit 2), since the numbers are not the index's own."""

    def __init__(self, message: str, run_id: str, status: RunStatus) -> None:
        super().__init__(message)
        self.run_id, self.status = run_id, status


def _stopped_early(audit: Audit, settings: AuditSettings, run_id: str, status: RunStatus,
                   fault: str) -> RunStoppedEarly:
    """Judge and report the run as it stands, then say what happened in one sentence."""
    from auditor.nightly import judge, publish

    counts = audit.store.run(run_id)["counts"] or {}
    errors = (counts.get("by_status") or {}).get("error", 0)
    where = ""
    try:
        verdict = publish(audit.store, judge(audit.store, run_id, settings), settings)
        report = verdict.reports.get("html") or next(iter(verdict.reports.values()), None)
        if report is not None:
            where = f"; verdict and reports written ({Path(report).parent})"
    except Exception as exc:  # noqa: BLE001 (the index fault is the message; this is a note)
        where = f"; the reports could not be written ({exc})"
    return RunStoppedEarly(
        f"run {run_id} is {status}: the index failed ({fault}); {errors} of "
        f"{counts.get('replayed', 0)} queries are stored as errors{where}. Run it again "
        "once the index answers", run_id, status)


def _start(audit: Audit, settings: AuditSettings, resume: str | None) -> tuple[str, RunCounts]:
    store = audit.store
    if resume is not None:
        counts = RunCounts(**(store.run(resume)["counts"] or {}))
        store.reopen_run(resume)
        return resume, counts
    run_id = new_run_id()
    store.create_run(
        run_id, backend=audit.backend.name, mode=settings.mode, level=settings.level,
        config=settings.snapshot(), fingerprint=audit.backend.fingerprint().as_dict(),
        code_version=__version__,
    )
    counts = RunCounts(qrels_quarantined=len(audit.bad_qrels),
                       qrels_queries=len(audit.judgments))
    store.append({"quarantine": quarantine_table(run_id, audit.bad_qrels)},
                 checkpoint=(run_id, asdict(counts)))
    return run_id, counts


def _run(audit: Audit, settings: AuditSettings, progress: Progress | None,
         resume: str | None, executor: Executor | None = None) -> tuple[str, RunStatus]:
    store = audit.store
    run_id, counts = _start(audit, settings, resume)
    done = counts.replayed
    if audit.encoder is not None and counts.embedding_cache:
        previous = counts.embedding_cache
        audit.encoder.stats = CacheStats(previous["lookups"], previous["hits"],
                                         previous["encoded"])
    load = LoadCounts()
    status: RunStatus = "failed"
    reason: str | None = None
    sample: Sample | None = None
    pending, written = Pending(seconds=settings.flush_seconds), counts
    with contextlib.ExitStack() as end:  # the run's end holds one connection
        try:
            quarantined: list[QuarantineEntry] = []
            stored = store.quarantined_lines(run_id) if resume else set()
            sample, items = log_items(settings, load)  # sample None: the whole log
            records = _accepted(items, quarantined, stored)
            if executor is not None:  # it stores every batch; the run-level work stays here
                executor(audit, run_id, records, counts, quarantined, progress)
                records = iter(())
            for batch in batched(itertools.islice(records, done, None), settings.batch_size):
                result = audit.batch(counts.replayed, batch)
                tables = batch_tables(run_id, result, settings)
                tables["quarantine"] = quarantine_table(run_id, quarantined)
                tables["embeddings"] = audit.new_embeddings()
                after = _with_cache(counts.after(result), audit)
                pending.add(tables)
                counts = after
                quarantined.clear()
                # New vectors are written at once, so the next batch finds them in the store
                if pending.due() or pending.has("embeddings"):
                    written = _flush(audit, pending, run_id, counts)
                if progress:
                    progress(len(result.rows))
            pending.add({"quarantine": quarantine_table(run_id, quarantined)})
            written = _flush(audit, pending, run_id, counts)
            end.enter_context(store.held())
            counts.corpus = _corpus(audit, run_id, counts)
            counts = _with_cache(counts, audit)  # the audit's lookups, not the gaps view's
            if not audit.fault:
                measure_gaps(store, run_id, audit.encoder, audit.backend, settings.seed)
            store.append({"embeddings": audit.new_embeddings()})
            status, reason = final_status(counts, audit.replayer.abort_reason or (
                f"the corpus pass failed: {audit.corpus_fault}" if audit.corpus_fault else None),
                load, sampled=sample is not None)
        except KeyboardInterrupt:
            # Whole batches gathered since the last flush are kept: Ctrl-C costs no finished work
            if pending.tables and counts.replayed > written.replayed:
                written = _flush(audit, pending, run_id, counts)
            counts, status, reason = written, "partial", "interrupted"
            raise
        except BaseException as exc:
            counts = written  # the batches still pending are not stored: resume redoes them
            status = "partial" if counts.replayed else "failed"
            reason = f"stopped by error: {exc}"
            raise
        finally:
            counts.read, counts.accepted = load.read, load.accepted
            counts.quarantined, counts.blank = load.quarantined, load.blank
            counts.skipped = load.skipped
            store.finish_run(run_id, status, reason, asdict(counts))
            store.set_manifest(run_id, manifest(
                settings, store, run_id, counts, thresholds=audit.thresholds,
                model_id=audit.encoder.model_id if audit.encoder else None, sample=sample,
                labels=audit.labels))
    return run_id, status


def _flush(audit: Audit, pending: Pending, run_id: str, counts: RunCounts) -> RunCounts:
    """Write the gathered batches (with the vectors encoded for them) and the counts after
    the last of them in one transaction; returns the counts now stored."""
    tables = pending.take()
    audit.store.append(tables, checkpoint=(run_id, asdict(counts)))
    return counts


def _corpus(audit: Audit, run_id: str, counts: RunCounts) -> dict[str, Any]:
    """The corpus pass, unless nothing was answered or the index is down; an index that
    fails during it leaves the run partial, not crashed."""
    if not counts.by_status["ok"] + counts.by_status["empty"] or audit.replayer.abort_reason:
        return {}
    from auditor.corpus import corpus_pass

    try:
        return corpus_pass(run_id, audit.store, audit.backend, audit.settings)
    except BackendError as exc:
        audit.corpus_fault = str(exc)
        return {}


def _with_cache(counts: RunCounts, audit: Audit) -> RunCounts:
    if audit.encoder is not None:
        counts.embedding_cache = audit.encoder.stats.as_dict()
    return counts


def _accepted(items: Iterable[LogRecord | QuarantineEntry], quarantined: list[QuarantineEntry],
              stored: set[tuple[str, int]]) -> Iterator[LogRecord]:
    """Pass records through; set quarantine entries aside to be written with the batch
    (unless a resumed run stored them already)."""
    for item in items:
        if isinstance(item, QuarantineEntry):
            if (item.source, item.line) not in stored:
                quarantined.append(item)
        else:
            yield item


