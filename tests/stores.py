"""A results store like the one a team has after two nightly audits of the SciFact fixtures:
a good baseline, then a night where some judged-relevant documents vanished from the index.

Used by the report, dashboard and nightly tests (and handy by hand:
``python -m tests.stores DIR`` builds one for `auditor dashboard --store DIR/audit.duckdb`).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from auditor.audit import run_audit
from auditor.backends.embedded import EmbeddedBackend
from auditor.config import AuditSettings, load_settings
from auditor.corpus_reader import read_corpus
from auditor.embed import load_encoder
from auditor.nightly import judge
from auditor.store import Store

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT / "fixtures" / "scifact"
REMOVED = 10  # relevant documents that disappear before the second night


@dataclass(frozen=True)
class NightlyStore:
    path: Path
    baseline_run_id: str  # complete, gates passed
    run_id: str  # complete, gates failed (recall@10 and ndcg@10 dropped significantly)
    removed_docs: list[str]
    settings: AuditSettings


def removed_documents(count: int = REMOVED) -> list[str]:
    """The first ``count`` distinct judged-relevant documents, one per query, in qrels
    order."""
    with (SCIFACT / "qrels.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    picked: dict[str, str] = {}
    for row in rows:
        picked.setdefault(row["query-id"], row["corpus-id"])
    return list(dict.fromkeys(picked.values()))[:count]


def build_nightly_store(directory: Path) -> NightlyStore:
    directory.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder("hash")
    chunks = list(read_corpus(SCIFACT / "corpus.jsonl"))
    removed = removed_documents()
    full = EmbeddedBackend.build(chunks, directory / "index-full", encoder)
    degraded = EmbeddedBackend.build(
        [c for c in chunks if c.doc_id not in set(removed)], directory / "index-degraded",
        encoder)
    settings = load_settings(
        None, log=SCIFACT / "log.jsonl", qrels=SCIFACT / "qrels.tsv",
        store=directory / "audit.duckdb", index=directory / "index-full", encoder="hash",
        mode="bm25", baseline="last", reports=directory / "reports",
    )
    store = Store(settings.store)
    runs = []
    for backend in (full, degraded):
        run_id, _ = run_audit(settings, backend=backend)
        judge(store, run_id, settings)
        runs.append(run_id)
    return NightlyStore(settings.store, runs[0], runs[1], removed, settings)


if __name__ == "__main__":
    built = build_nightly_store(Path(sys.argv[1]))
    print(f"{built.path}: baseline {built.baseline_run_id}, regressed {built.run_id}")
