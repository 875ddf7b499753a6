"""What a run records about itself: its counts (checkpointed with every batch), its final
status, the manifest every stored number can be traced to, and the settings to resume it."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditor import __version__
from auditor.cases import Thresholds
from auditor.config import AuditSettings
from auditor.evidence import SUPPORT_THRESHOLD
from auditor.judging import Labels, record_run_list
from auditor.logs import LoadCounts
from auditor.metrics.per_query import BatchResult
from auditor.sampled import manifest_entry
from auditor.sampling import Sample
from auditor.store import RunStatus, Store, StoreError, resume_refusal
from auditor.store.read.run_facts import log_span


@dataclass
class RunCounts:
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    blank: int = 0
    skipped: int = 0  # lines that are not queries (e.g. non-retriever spans)
    qrels_quarantined: int = 0
    qrels_queries: int = 0  # queries the qrels file judges (whether or not in the log)
    replayed: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {"ok": 0, "empty": 0, "error": 0})
    traced: int = 0
    corpus: dict[str, Any] = field(default_factory=dict)
    embedding_cache: dict[str, Any] = field(default_factory=dict)

    def after(self, result: BatchResult) -> RunCounts:
        """The counts once ``result`` is stored (a copy: they are written with the batch)."""
        counts = copy.deepcopy(self)
        counts.replayed += len(result.rows)
        counts.traced += len(result.traces)
        for row in result.rows:
            counts.by_status[row.status] += 1
        return counts


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def resume_settings(store: Store, run_id: str) -> dict[str, Any]:
    """The stored settings of an unfinished run, to rebuild ``AuditSettings`` from.

    Secrets were never stored: they come from the environment again.
    """
    row = store.run(run_id)
    refusal = resume_refusal(run_id, row["status"], row.get("owner"))
    if refusal:
        raise StoreError(refusal)
    config = dict(row["config"])
    for key in ("es_credentials", "webhook"):
        config.pop(key, None)
    return config


def manifest(settings: AuditSettings, store: Store, run_id: str, counts: RunCounts, *,
             model_id: str | None, thresholds: Thresholds,
             sample: Sample | None = None, labels: Labels | None = None) -> dict[str, Any]:
    """What every stored number of the run can be traced to; a sampled run adds ``sample``
    (n, N, rate, seed, stratify_by, strata as [n_h, N_h]), a run over the whole log nothing."""
    config = settings.snapshot()
    span = log_span(store, run_id)
    fingerprint = store.run(run_id)["fingerprint"]  # taken when the run started
    recorded = {
        "config_digest": hashlib.sha256(
            json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "index": fingerprint,
        "embedding_model": (model_id if model_id is not None
                            else fingerprint.get("model_id") or None),
        "thresholds": {**asdict(thresholds), "support": SUPPORT_THRESHOLD},
        "code_version": code_version(),
        "log": {"path": str(settings.log), "sha256": file_digest(settings.log),
                "first_logged_at": span.first_logged_at,
                "last_logged_at": span.last_logged_at},
        "counts": asdict(counts),
    }
    if sample is not None:
        recorded["sample"] = manifest_entry(sample)
    recorded["judgments"] = record_run_list(store, settings.qrels, labels)
    return recorded


def file_digest(path: Any) -> str | None:
    """SHA-256 of a log file (or of a directory's files, in name order): the log's identity,
    which makes two runs comparable whatever their replay errors."""
    from pathlib import Path

    if path is None:
        return None
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    try:
        for file in files:
            digest.update(str(file.relative_to(root) if root.is_dir() else "").encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def code_version() -> str:
    """Package version, plus the git commit when run from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
            timeout=5, cwd=Path(__file__).parent, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}"


def final_status(counts: RunCounts, abort_reason: str | None, load: LoadCounts | None = None,
                 sampled: bool = False) -> tuple[RunStatus, str | None]:
    """A run that accepted no query checked nothing: it fails, so a nightly job whose log
    export broke does not stay green. So does a sampled run whose picked lines all failed
    their full check (the lines it did not pick still count as accepted)."""
    if load is not None and not load.accepted:
        return "failed", nothing_accepted(load)
    if sampled and not counts.replayed:
        return "failed", ("no query replayed: every line the sample picked was quarantined "
                          "(see `auditor runs` and the quarantine)")
    errors = counts.by_status["error"]
    if counts.replayed and errors == counts.replayed:
        return "failed", abort_reason or "every query failed"
    if abort_reason:
        return "partial", abort_reason
    if errors:
        return "partial", f"{errors} of {counts.replayed} queries failed"
    return "complete", None


def nothing_accepted(load: LoadCounts) -> str:
    if not load.read:
        return "the log holds no record: is the export empty?"
    parts = [f"{n} {what}" for n, what in ((load.quarantined, "quarantined"),
                                           (load.blank, "blank"), (load.skipped, "skipped"))
             if n]
    return (f"no query accepted from the log: {load.read} lines read, "
            f"{', '.join(parts) or 'none usable'} (see `auditor runs` and the quarantine)")
