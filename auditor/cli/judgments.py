"""Commands on judgment lists (``auditor judgments import|export|list|diff``) and
``auditor rescore``, which measures a stored run against another list version."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from auditor.cli.options import ConfigOpt, JsonOpt, StoreOpt
from auditor.cli.render import err, out
from auditor.config import load_settings
from auditor.judging import Pair, Selection
from auditor.numerals import fixed
from auditor.store import Store

SourcesOpt = Annotated[str, typer.Option(
    help="labels to use: default (human and imported; automatic ones only when the list "
         "has nothing else), all, or a comma list (human, human:alice, cited, silver, ...)")]
PolicyOpt = Annotated[str, typer.Option(
    help="one grade from several raters: majority (ties to the lower), mean, rater:NAME")]


def _store(store: Path | None, config: Path | None) -> Store:
    return Store(load_settings(config, store=store).store)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def import_(
    qrels: Annotated[Path, typer.Argument(help="TREC or BEIR qrels file")],
    name: Annotated[str | None, typer.Option(help="list name (default: the file's stem)")] = None,
    source: Annotated[str | None, typer.Option(
        help="label source, e.g. human:alice (default: imported:FILENAME)")] = None,
    note: Annotated[str | None, typer.Option(help="a note kept with the version")] = None,
    merge: Annotated[bool, typer.Option(
        help="keep the latest version's labels of other sources (another rater's file)")
    ] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a qrels file as the next version of a judgment list."""
    from auditor.judging import import_qrels

    done = import_qrels(_store(store, config), qrels, name=name, source=source, note=note,
                        merge=merge)
    if as_json:
        _echo_json({**asdict(done), "version": done.version.spec,
                    "quarantined": [asdict(q) for q in done.quarantined]})
        return
    verb = "stored" if done.created else "unchanged:"
    out.print(Text(f"{verb} {done.version.spec} ({done.labels} labels from {qrels})"))
    if done.repeated:
        out.print(Text(f"{done.repeated} repeated pairs counted once (first line, last grade)"))
    for entry in done.quarantined[:5]:
        err.print(Text(f"{entry.source}:{entry.line}: {entry.field}: {entry.reason} "
                       "(not imported)"))
    out.print(Text("export round-trips the file byte for byte" if done.round_trips else
                   f"export will write the file in canonical form (first difference: line "
                   f"{done.first_difference})"))


def export(
    judgments: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="qrels file to write")],
    qrels_format: Annotated[str | None, typer.Option(
        "--format", help="trec or beir (default: the format it was imported from)")] = None,
    sources: SourcesOpt = "default",
    policy: PolicyOpt = "majority",
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a list version as a qrels file, one line per pair (its effective grade)."""
    from auditor.errors import InputError
    from auditor.judging import export_list

    if qrels_format not in (None, "trec", "beir"):
        raise InputError(f"--format {qrels_format!r}: expected trec or beir")
    version, lines = export_list(_store(store, config), judgments, out_file, fmt=qrels_format,
                                 selection=Selection(sources, policy))
    out.print(Text(f"wrote {lines} judgments of {version.spec} to {out_file}"))


def list_(
    name: Annotated[str | None, typer.Option(help="a list's name: show every version")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The judgment lists in the store (latest versions), or every version of one."""
    versions = _store(store, config).list_versions(name)
    if name is None:
        latest = {v.name: v for v in versions}  # versions ascend: the last one stays
        versions = list(latest.values())
    if as_json:
        _echo_json([{**asdict(v), "spec": v.spec} for v in versions])
        return
    if not versions:
        out.print("no judgment lists: `auditor judgments import QRELS` creates one")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, highlight=False)
    for column in ("list", "created", "labels", "sources", "origin", "note"):
        table.add_column(column, justify="right" if column == "labels" else "left")
    for v in versions:
        table.add_row(*(Text(str(cell)) for cell in (
            v.spec, str(v.created_at)[:16], v.labels, ", ".join(v.sources), v.origin,
            v.note or "")))
    out.print(table)


def diff(
    first: Annotated[str, typer.Argument(help="NAME@VERSION (A)")],
    second: Annotated[str, typer.Argument(help="NAME@VERSION (B)")],
    sources: SourcesOpt = "default",
    policy: PolicyOpt = "majority",
    limit: Annotated[int, typer.Option(help="pairs shown per kind")] = 20,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pairs added, removed and regraded from list version A to B (effective grades)."""
    from auditor.judging import diff as diff_lists

    found = diff_lists(_store(store, config), first, second, Selection(sources, policy))
    if as_json:
        _echo_json({"a": found.a, "b": found.b, "same": found.same,
                    "added": [_pair(p) for p in found.added],
                    "removed": [_pair(p) for p in found.removed],
                    "changed": [{**_pair(b), "was": a.grade} for a, b in found.changed]})
        return
    out.print(Text(f"{found.a} → {found.b}: {len(found.added)} added, {len(found.removed)} "
                   f"removed, {len(found.changed)} regraded, {found.same} the same"))
    rows = ([("added", p.query_id, p.doc_id, "", str(p.grade)) for p in found.added[:limit]]
            + [("removed", p.query_id, p.doc_id, str(p.grade), "")
               for p in found.removed[:limit]]
            + [("regraded", b.query_id, b.doc_id, str(a.grade), str(b.grade))
               for a, b in found.changed[:limit]])
    if rows:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, highlight=False)
        for column in ("", "query", "document", "A", "B"):
            table.add_column(column)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        out.print(table)


def _pair(pair: Pair) -> dict[str, Any]:
    return {"query_id": pair.query_id, "doc_id": pair.doc_id, "grade": pair.grade,
            "grades": pair.grades}


def rescore(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    judgments: Annotated[str, typer.Option(help="NAME@VERSION to measure the run against")],
    sources: SourcesOpt = "default",
    policy: PolicyOpt = "majority",
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-score a stored run's hits against another judgment list, without replaying."""
    from auditor.cli.weak import rescore_notes
    from auditor.judging import resolve
    from auditor.rescore import rescore as rescore_run

    opened = _store(store, config)
    selection = Selection(sources, policy)
    done = rescore_run(opened, run_id, judgments, selection)
    notes = rescore_notes(opened, run_id, done.judgments,
                          selection.keeps(set(resolve(opened, done.judgments).sources)))
    if as_json:
        _echo_json({**asdict(done), "metrics": [{**asdict(m), "delta": m.delta}
                                                for m in done.metrics], "notes": notes})
        return
    out.print(Text(f"rescoring {done.rescore_id} of {run_id} against {done.judgments}: "
                   f"{done.judged_queries} of {done.queries} answered queries judged"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, highlight=False)
    for column in ("metric", "run", "n", "rescored", "n ", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in done.metrics:
        table.add_row(m.metric, fixed(m.stored), str(m.stored_n), fixed(m.rescored),
                      str(m.rescored_n), fixed(m.delta, signed=True))
    out.print(table)
    for line in notes:
        out.print(Text(line))


def agreement(
    judgments: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    sources: SourcesOpt = "default",
    limit: Annotated[int, typer.Option(help="pairs in disagreement shown")] = 20,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How far the raters of a list agree: Cohen's κ, Krippendorff's α, disagreements."""
    from auditor.agreement import agreement as measure

    found = measure(_store(store, config), judgments, Selection(sources))
    if as_json:
        _echo_json({**asdict(found), "disagreements": [_pair(p) for p in found.disagreements]})
        return
    out.print(Text(f"{found.judgments}: {len(found.raters)} raters, {found.items} pairs judged "
                   "by two or more; Krippendorff's α " + ", ".join(
                       f"{level} {fixed(value)}" for level, value in found.alpha.items())))
    if found.kappas:
        table = Table(title="Cohen's κ", title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, highlight=False)
        for column in ("rater A", "rater B", "pairs", "κ", "linear", "quadratic"):
            table.add_column(column, justify="left" if column.startswith("rater") else "right")
        for k in found.kappas:
            table.add_row(Text(k.a), Text(k.b), str(k.n), fixed(k.kappa), fixed(k.linear),
                          fixed(k.quadratic))
        out.print(table)
    grades = sorted({g for d in found.distributions.values() for g in d})
    table = Table(title="grades per rater", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, highlight=False)
    table.add_column("rater")
    for grade in grades:
        table.add_column(str(grade), justify="right")
    for rater, counts in found.distributions.items():
        table.add_row(Text(rater), *(str(counts.get(g, 0)) for g in grades))
    out.print(table)
    if found.disagreements:
        table = Table(title=f"pairs in disagreement ({len(found.disagreements)})",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      highlight=False)
        for column in ("query", "document", "grades"):
            table.add_column(column)
        for pair in found.disagreements[:limit]:
            table.add_row(Text(pair.query_id), Text(pair.doc_id), Text(", ".join(
                f"{rater} {grade}" for rater, grade in pair.grades.items())))
        out.print(table)


def cited(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    name: Annotated[str, typer.Option(help="list to store the labels in")] = "cited",
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Labels from the run's log: cited ids 1, shown but not cited 0, never shown unjudged."""
    from auditor.implicit_labels import labels_from_log

    done = labels_from_log(_store(store, config), run_id, name)
    if as_json:
        _echo_json({**asdict(done), "version": done.version.spec})
        return
    verb = "stored" if done.created else "unchanged:"
    out.print(Text(f"{verb} {done.version.spec}: {done.cited} cited and {done.shown} shown but "
                   f"not cited, from {done.answers} logged answers (source `cited`; ids never "
                   "shown stay unjudged)"))
    if done.unshown_cited:
        out.print(Text(f"{done.unshown_cited} cited ids were not among the served ones"))


def reattach(
    judgments: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    old_chunk_words: Annotated[int, typer.Option(
        help="chunk_words the judged index was built with")],
    old_corpus: Annotated[Path | None, typer.Option(
        help="corpus the judged index was built from (default: corpus)")] = None,
    name: Annotated[str | None, typer.Option(
        help="list to write (default: the same list, next version)")] = None,
    threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="share of the judged text the new chunks must cover")] = 0.5,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a list's chunk labels onto the chunks of the rebuilt index (corpus and
    chunk_words of the settings): exact text first, then character overlap."""
    from auditor.corpus_reader import read_corpus
    from auditor.errors import ConfigError
    from auditor.reattach import reattach_list

    settings = load_settings(config, store=store)
    if settings.corpus is None:
        raise ConfigError("no corpus: set `corpus` in audit.toml (the rebuilt index's)")
    done = reattach_list(Store(settings.store), judgments,
                         read_corpus(old_corpus or settings.corpus, old_chunk_words),
                         read_corpus(settings.corpus, settings.chunk_words), name=name,
                         threshold=threshold)
    counts = {"kept": done.kept, **done.report.counts}
    lost = [{"query_id": u.label.query_id, "chunk_id": u.label.chunk_id, "reason": u.reason}
            for u in done.report.unattached]
    if as_json:
        _echo_json({"from": done.source, "to": done.target, "counts": counts,
                    "unattached": lost})
        return
    out.print(Text(f"{done.source} → {done.target}: {counts['kept']} document labels kept, "
                   f"{counts['exact']} chunk labels re-attached by exact text, "
                   f"{counts['overlap']} by overlap, {counts['unattached']} not re-attached"))
    for entry in lost:
        out.print(Text(f"  {entry['query_id']} {entry['chunk_id']}: {entry['reason']}"))
