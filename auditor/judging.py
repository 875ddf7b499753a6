"""Judgment lists: importing and exporting qrels, the effective grade of a pair, diffs.

Ordering rules (what makes ``import`` → ``export`` give back the same bytes):

- A version's labels keep a *position*. An imported file's labels take their line order;
  labels merged into a later version keep theirs and new ones follow.
- Export writes one line per (query, document) pair, in the order of the pair's first
  position, with the pair's effective grade (below). A TREC line keeps the iteration
  column it was read with (``0`` for labels from elsewhere) and the file's separator; a
  BEIR file keeps its header line. Lines end in ``\\n``, the last one too.
- A pair repeated in one file counts once (at its first line, with its last grade, as
  trec_eval reads it); ``import`` says so, and says whether the file will round-trip
  byte for byte (it does when it is in this canonical form: unique pairs, one separator,
  integer grades, ``\\n`` line ends, no blank or quarantined lines).

Effective grade: labels are chosen by source (:class:`Selection`): by default the human
and imported ones, the automatic sources (``silver``, ``cited``, ``llm:<model>``) only when
the list holds nothing else or when asked. Each source's latest label of a pair counts;
across sources the ``majority`` grade wins (a tie goes to the lower grade), or the
``mean`` rounded half up, or ``rater:NAME``'s grade alone.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.errors import InputError
from auditor.judgments import QREL_COLUMNS, QrelRow, qrel_rows, qrel_table
from auditor.label_digest import digest
from auditor.logs import LoadCounts
from auditor.records import QuarantineEntry
from auditor.store import Store, StoreError
from auditor.store.judgment_lists import LABEL_SCHEMA, ListVersion

AUTOMATIC = ("silver", "cited", "llm")  # source kinds never mixed with people's unless asked
POLICIES = ("majority", "mean")  # and rater:NAME
BEIR_HEADER = "query-id\tcorpus-id\tscore"


def text_hash(text: str) -> str:
    """The hash a label keeps of a query or judged text (16 hex digits of SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``NAME@VERSION`` (or ``NAME`` / ``NAME@latest`` for the latest version)."""
    name, _, version = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if not name.strip():
        raise InputError(f"judgment list {spec!r}: expected NAME or NAME@VERSION")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InputError(f"judgment list {spec!r}: version {version!r} is not a positive "
                         "integer (NAME@VERSION, e.g. qrels@2)")
    return name, int(version)


def resolve(store: Store, spec: str) -> ListVersion:
    return store.list_version(*parse_spec(spec))


@dataclass(frozen=True)
class Selection:
    """Which labels make a pair's effective grade: ``sources`` is ``default``, ``all`` or
    a comma-separated list (``human`` matches every ``human:<rater>``)."""

    sources: str = "default"
    policy: str = "majority"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES and not (self.policy.startswith("rater:")
                                                and len(self.policy) > 6):
            raise InputError(f"grade policy {self.policy!r}: expected majority, mean or "
                             "rater:NAME")

    def keeps(self, sources: set[str]) -> set[str]:
        """The sources of ``sources`` this selection uses."""
        if self.policy.startswith("rater:"):
            rater = self.policy.removeprefix("rater:")
            return {s for s in sources if s in (rater, f"human:{rater}")}
        if self.sources == "all":
            return set(sources)
        if self.sources == "default":
            people = {s for s in sources if kind(s) not in AUTOMATIC}
            return people or set(sources)
        wanted = [w.strip() for w in self.sources.split(",") if w.strip()]
        return {s for s in sources if s in wanted or kind(s) in wanted}

    def as_dict(self) -> dict[str, str]:
        return {"sources": self.sources, "policy": self.policy}


def kind(source: str) -> str:
    """``human`` for ``human:alice``, ``cited`` for ``cited``."""
    return source.split(":", 1)[0]


@dataclass(frozen=True)
class Pair:
    """One (query, document) pair with its effective grade."""

    query_id: str
    doc_id: str
    grade: int
    position: int
    iteration: str | None
    grades: dict[str, int] = field(default_factory=dict)  # source -> its latest grade


def effective(labels: pa.Table, selection: Selection) -> list[Pair]:
    """Each pair's effective grade under ``selection``, in first-position order."""
    rows = labels.select(["position", "query_id", "doc_id", "grade", "source", "iteration"]
                         ).to_pylist()
    used = selection.keeps({row["source"] for row in rows})
    first: dict[tuple[str, str], dict[str, Any]] = {}
    by_source: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:  # position order: a source's later label replaces its earlier one
        if row["source"] not in used:
            continue
        key = (row["query_id"], row["doc_id"])
        first.setdefault(key, row)
        by_source.setdefault(key, {})[row["source"]] = row["grade"]
    return [Pair(q, d, combine(list(by_source[(q, d)].values()), selection.policy),
                 row["position"], row["iteration"], by_source[(q, d)])
            for (q, d), row in first.items()]


def combine(grades: list[int], policy: str) -> int:
    """One grade from several raters' (see the module docstring)."""
    if policy == "mean":
        return int((2 * sum(grades) + len(grades)) // (2 * len(grades)))  # half up
    counts = Counter(grades)
    top = max(counts.values())
    return min(g for g, n in counts.items() if n == top)


def render(pairs: list[Pair], layout: dict[str, Any]) -> str:
    """The qrels file of ``pairs`` in ``layout`` (format, separator, header)."""
    sep = layout.get("separator") or (" " if layout.get("format") == "trec" else "\t")
    if layout.get("format") == "beir":
        lines = [layout.get("header") or BEIR_HEADER]
        lines += [f"{p.query_id}{sep}{p.doc_id}{sep}{p.grade}" for p in pairs]
    else:
        lines = [f"{p.query_id}{sep}{p.iteration or '0'}{sep}{p.doc_id}{sep}{p.grade}"
                 for p in pairs]
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Imported:
    """What ``auditor judgments import`` did."""

    version: ListVersion
    created: bool  # False: the latest version already held exactly these labels
    labels: int
    repeated: int  # pairs the file named more than once (counted once)
    quarantined: list[QuarantineEntry]
    round_trips: bool
    first_difference: int | None  # the first line an export would write differently


def read_labels(path: Path, source: str) -> tuple[pa.Table, dict[str, Any], int,
                                                  list[QuarantineEntry]]:
    """A qrels file as labels (first position, last grade per pair), its layout, the
    number of repeated pairs and the quarantined lines."""
    counts = LoadCounts()
    bad: list[QuarantineEntry] = []
    clean = qrel_table(path)
    if clean is not None:
        read, header = clean
        counts.skipped = int(header)
    else:
        rows: list[QrelRow] = []
        for item in qrel_rows(path, counts):
            if isinstance(item, QuarantineEntry):
                bad.append(item)
            else:
                rows.append(item)
        read = _columns(rows)
    pairs, repeated = _pairs(read)
    n = pairs.num_rows
    empty = pa.nulls(n, pa.string())
    table = pa.table({
        "position": pa.array(np.arange(n, dtype=np.int32)), "query_id": pairs["query_id"],
        "query_hash": empty, "doc_id": pairs["doc_id"], "chunk_id": empty, "text_hash": empty,
        "grade": pairs["grade"], "source": pa.repeat(source, n),
        "labeled_at": pa.repeat(pa.scalar(datetime.now(UTC), LABEL_SCHEMA.field(
            "labeled_at").type), n),
        "note": empty, "iteration": pairs["iteration"],
    }, schema=LABEL_SCHEMA)
    return table, _layout(path, counts), repeated, bad


def _columns(rows: list[QrelRow]) -> pa.Table:
    query_ids, doc_ids, grades, iterations = zip(*rows, strict=True) if rows else ((),) * 4
    return pa.table([pa.array(query_ids, pa.string()), pa.array(doc_ids, pa.string()),
                     pa.array(grades, pa.int32()), pa.array(iterations, pa.string())],
                    names=list(QREL_COLUMNS))


def _pairs(read: pa.Table) -> tuple[pa.Table, int]:
    """Each (query, document) pair once, in the order of its first line, with its last
    grade (as trec_eval reads a repeated pair), and how many lines repeated a pair.
    Columns and Arrow's group-by, not a dict per label: a night's qrels hold millions of
    labels (two Python dicts per label put a 1M-query Ray night's driver over 2 GB)."""
    read = read.append_column("row", pa.array(np.arange(read.num_rows, dtype=np.int64)))
    grouped = read.group_by(["query_id", "doc_id"], use_threads=False).aggregate(
        [("row", "min"), ("row", "max")])
    if grouped.num_rows == read.num_rows:  # no pair repeated: the file's own order
        return read, 0
    order = pc.sort_indices(grouped, [("row_min", "ascending")])
    first, last = grouped["row_min"].take(order), grouped["row_max"].take(order)
    pairs = read.take(first).set_column(2, "grade", read["grade"].take(last))
    return pairs, read.num_rows - grouped.num_rows


def _layout(path: Path, counts: LoadCounts) -> dict[str, Any]:
    """TREC or BEIR, the separator of the first data line, and a BEIR header line."""
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = handle.readline().rstrip("\r\n")
        header = first if counts.skipped else None
        data = handle.readline().rstrip("\r\n") if header is not None else first
    sep = "\t" if "\t" in data else " "
    columns = len(data.split("\t") if sep == "\t" else data.split())
    return {"format": "beir" if header is not None or columns == 3 else "trec",
            "separator": sep, "header": header}


def import_qrels(store: Store, path: Path, *, name: str | None = None,
                 source: str | None = None, note: str | None = None,
                 merge: bool = False) -> Imported:
    """A qrels file as the next version of list ``name`` (default: the file's stem).

    With ``merge`` the new version keeps the latest version's labels of other sources
    (a second rater's file); without it, it holds this file's labels only. A file whose
    labels the latest version already holds creates nothing.
    """
    name = name or path.stem
    source = source or f"imported:{path.name}"
    labels, layout, repeated, bad = read_labels(path, source)
    latest = _latest(store, name)
    if merge and latest is not None:
        base = store.list_labels(name, latest.version)
        kept = base.filter(pc.not_equal(base.column("source"), source))
        offset = (max(kept.column("position").to_pylist()) + 1) if kept.num_rows else 0
        labels = labels.set_column(0, "position", pa.array(
            [offset + p for p in labels.column("position").to_pylist()], pa.int32()))
        labels = pa.concat_tables([kept, labels])
        layout = latest.layout
    if not labels.num_rows:
        raise InputError(f"qrels file {path} holds no judgment (quarantined lines: "
                         f"{len(bad)})")
    label_digest = digest(labels)
    created = latest is None or latest.digest != label_digest
    if created:
        store.add_list_version(name, labels, origin=f"import {path}", note=note,
                               layout=layout, digest=label_digest)
    version = store.list_version(name)
    first = _first_difference(path, render(effective(labels, Selection("all")), layout))
    return Imported(version, created, labels.num_rows, repeated, bad, first is None, first)


def _latest(store: Store, name: str) -> ListVersion | None:
    try:
        return store.list_version(name)
    except StoreError:
        return None


def _first_difference(path: Path, text: str) -> int | None:
    """The first line (1-based) where ``text`` differs from the file's bytes, or None."""
    old = path.read_bytes().split(b"\n")
    new = text.encode("utf-8").split(b"\n")
    for number, (a, b) in enumerate(zip(old, new, strict=False), start=1):
        if a != b:
            return number
    return None if len(old) == len(new) else min(len(old), len(new))


def export_list(store: Store, spec: str, out: Path, *, fmt: str | None = None,
                selection: Selection | None = None) -> tuple[ListVersion, int]:
    """Write a list version as a qrels file; returns the version and lines written."""
    version = resolve(store, spec)
    pairs = effective(store.list_labels(version.name, version.version),
                      selection or Selection())
    layout = dict(version.layout or {"format": "trec"})
    if fmt and fmt != layout.get("format"):
        layout = {"format": fmt, "separator": "\t" if fmt == "beir" else " ", "header": None}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        handle.write(render(pairs, layout))
    return version, len(pairs)


@dataclass(frozen=True)
class Diff:
    """Pairs of list version ``b`` against ``a`` by effective grade."""

    a: str
    b: str
    added: list[Pair]
    removed: list[Pair]
    changed: list[tuple[Pair, Pair]]  # (in a, in b)
    same: int


def diff(store: Store, spec_a: str, spec_b: str, selection: Selection | None = None) -> Diff:
    selection = selection or Selection()
    version_a, version_b = resolve(store, spec_a), resolve(store, spec_b)
    a = {(p.query_id, p.doc_id): p for p in effective(
        store.list_labels(version_a.name, version_a.version), selection)}
    b = {(p.query_id, p.doc_id): p for p in effective(
        store.list_labels(version_b.name, version_b.version), selection)}
    changed = [(a[key], b[key]) for key in a.keys() & b.keys() if a[key].grade != b[key].grade]
    return Diff(version_a.spec, version_b.spec,
                added=sorted((b[key] for key in b.keys() - a.keys()), key=_at),
                removed=sorted((a[key] for key in a.keys() - b.keys()), key=_at),
                changed=sorted(changed, key=lambda pair: pair[1].position),
                same=len(a.keys() & b.keys()) - len(changed))


def _at(pair: Pair) -> int:
    return pair.position


Labels = tuple[pa.Table, dict[str, Any], int, list[QuarantineEntry]]  # as read_labels reads


def run_labels(path: Path) -> Labels:
    """A run's qrels file as labels: read once per run, for its judgments and for the list
    version its manifest names."""
    return read_labels(path, f"imported:{path.name}")


def judged_by_query(labels: pa.Table) -> dict[str, dict[str, int]]:
    """Grades by query and document, in the file's order."""
    judged: dict[str, dict[str, int]] = {}
    for query_id, doc_id, grade in zip(labels["query_id"].to_pylist(),
                                       labels["doc_id"].to_pylist(),
                                       labels["grade"].to_pylist(), strict=True):
        judged.setdefault(query_id, {})[doc_id] = grade
    return judged


def record_run_list(store: Store, path: Path | None, read: Labels | None
                    ) -> dict[str, Any] | None:
    """The list version a run's qrels file is (imported once per distinct content: a
    version with the same labels is reused), for the run's manifest. ``read``: the labels
    the run read from ``path`` at its start."""
    if path is None or read is None:
        return None
    labels, layout, _, _ = read
    if not labels.num_rows:
        return None
    label_digest = digest(labels)
    version = store.version_with_digest(path.stem, label_digest)
    if version is None:
        version = store.add_list_version(path.stem, labels, origin=f"qrels of a run: {path}",
                                         note=None, layout=layout, digest=label_digest)
    return {"list": path.stem, "version": version, "digest": label_digest, "path": str(path)}
