"""What the commands print: the two consoles, the progress bar, and a run, its verdict and a
comparison as Rich tables and lines. User text (ids, paths, reasons) is never read as markup.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from auditor.numerals import MISSING, fixed, interval, p_value
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.compare import Comparison
    from auditor.verdict import Verdict


def console(stderr: bool = False) -> Console:
    """A terminal wraps at its width; a pipe or a file gets whole lines (no 80-column wrap)."""
    terminal = Console(stderr=stderr).is_terminal
    wide = terminal or "COLUMNS" in os.environ
    return Console(stderr=stderr, soft_wrap=not terminal, width=None if wide else 200)


out = console()
err = console(stderr=True)


def progress() -> Progress:
    """A bar on stderr, only when it is a terminal (a pipe or CI log stays clean); with a
    known total (a JSONL log) it shows the time left, so a long run says when it ends."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


# a run ----------------------------------------------------------------------------------
def print_run(store: Store, run_id: str, as_json: bool, verdict: Verdict | None = None, *,
              verbose: bool = False, k: int = 10, flags: str = "") -> None:
    """The summary a person reads first (verdict, causes, next command); tables if verbose."""
    from auditor.cli.summary import summary_lines
    from auditor.report import run_summary

    data = run_summary(store, run_id)
    if verdict is not None:
        data["verdict"] = verdict.run_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for line in summary_lines(data, verdict, store, k, flags):
        out.print(line, highlight=False)
    if verbose:
        out.print()
        print_details(store, run_id, data)
        if verdict is not None:
            print_verdict(verdict)


def print_details(store: Store, run_id: str, data: dict[str, Any]) -> None:
    """Every measure and cause as tables, the corpus, the cache and the quarantine."""
    from auditor.metrics import MEASURES

    counts = data["counts"] or {}
    out.print(
        f"log lines read {counts.get('read', 0)}: accepted {counts.get('accepted', 0)}, "
        f"quarantined {counts.get('quarantined', 0)}, blank {counts.get('blank', 0)}"
        + (f", skipped {counts['skipped']}" if counts.get("skipped") else "") + "; "
        f"replayed {counts.get('replayed', 0)} ("
        + ", ".join(f"{status} {n}" for status, n in counts.get("by_status", {}).items())
        + ")", markup=False)
    ranking = [n for n in data["metrics"] if n.partition("@")[0] in MEASURES]
    others = [n for n in data["metrics"] if n not in ranking]
    out.print(metrics_table(
        data, f"{data['mode']} · {data['level']} level · mean over queries with judgments",
        ranking))
    if others:
        out.print(metrics_table(data, "answers, scatter and drift (silver = from answer "
                                      "evidence, not judgments)", others))
    if data["sentences"]:
        out.print("answer sentences: " + ", ".join(
            f"{status} {n}" for status, n in sorted(data["sentences"].items())))
    if data["causes"]:
        out.print(causes_table(data["causes"]))
    corpus = data["corpus"]
    if corpus:
        k = corpus["k"]
        out.print(
            f"corpus: {corpus['documents']} documents, coverage@{k} "
            f"{fixed(corpus.get(f'corpus_coverage@{k}'))}, gini {fixed(corpus.get('gini'))}, "
            f"never retrieved {corpus['never_retrieved_at_depth']} (at depth) / "
            f"{corpus['never_retrieved_at_k']} (at {k}), unreachable {corpus['unreachable']}"
        )
    cache = counts.get("embedding_cache") or {}
    if cache.get("lookups"):
        out.print(f"embedding cache: {cache['hit_rate']:.0%} hits ({cache['hits']} of "
                  f"{cache['lookups']} texts; {cache['encoded']} embedded)")
    bad = store.quarantine(run_id)
    if bad:
        out.print(f"[yellow]{len(bad)} records quarantined[/] (first 5):")
        for row in bad[:5]:  # file names, fields and reasons are user text: never markup
            out.print(f"  {row['source']}:{row['line']} [{row['field']}] {row['reason']}",
                      markup=False, highlight=False)
    out.print(f"stored in {store.path}", markup=False, highlight=False)


def metrics_table(data: dict[str, Any], title: str, names: list[str]) -> Table:
    """Measures as rows, cut-offs as columns; n = queries where the measure is defined."""
    grid: dict[str, dict[int, dict[str, Any]]] = {}
    for name in names:
        measure, _, k = name.partition("@")
        grid.setdefault(measure, {})[int(k) if k else 0] = data["metrics"][name]
    ks = sorted({k for row in grid.values() for k in row})
    table = Table(title=title)
    table.add_column("measure")
    for k in ks:
        table.add_column(f"@{k}" if k else "", justify="right")
    table.add_column("n", justify="right")
    for measure, row in grid.items():
        cells = [MISSING if row.get(k, {}).get("mean") is None else f"{row[k]['mean']:.4f}"
                 for k in ks]
        table.add_row(measure, *cells, str(max(value["n"] for value in row.values())))
    return table


def causes_table(causes: dict[str, dict[str, Any]]) -> Table:
    """Failure causes; drift below them, apart (a difference from production, not a failure)."""
    from auditor.cases import DRIFT

    table = Table(title="why retrieval failed (queries per cause)")
    for column in ("cause", "queries", "share"):
        table.add_column(column, justify="left" if column == "cause" else "right")
    for cause, value in sorted(causes.items(), key=lambda item: item[0] == DRIFT):
        if cause == DRIFT:
            table.add_section()
            cause = f"{DRIFT} (not a failure)"
        table.add_row(cause, str(value["queries"]), f"{value['share']:.0%}")
    return table


# a verdict ------------------------------------------------------------------------------
def print_verdict(verdict: Verdict) -> None:
    """The comparison with the baseline, each gate's mark and reason, where the reports are."""
    comparison = verdict.comparison
    if comparison is None:
        out.print("[dim]no baseline run to compare with yet[/]")
    else:
        out.print(f"compared with baseline {comparison.baseline_run_id} on "
                  f"{comparison.shared_queries} shared queries: {comparison.regressed_total} "
                  f"regressed, {comparison.improved_total} improved")
        for change in comparison.regressed[:10]:
            out.print(f"  [red]▼[/] {escape(change.query_id)} {change.metric} "
                      f"{change.baseline:.3f} → {change.current:.3f}"
                      + (f" · causes: {', '.join(change.causes_after)}"
                         if change.causes_after else ""))
        new = sorted(c["cause"] for c in comparison.new_cause_counts)
        if new:
            out.print(f"  new causes: {', '.join(new)}")
    marks = {"passed": "[green]PASS[/]", "failed": "[red]FAIL[/]",
             "not_evaluated": "[yellow]NOT EVALUATED[/]"}
    for gate in verdict.gates:
        out.print(f"{marks[gate.status]} {escape(gate.gate)}: {escape(gate.reason)}")
    if verdict.reports:
        directory = next(iter(verdict.reports.values())).parent
        names = ", ".join(path.name for path in verdict.reports.values())
        out.print(f"reports in {directory}: {names}", markup=False, highlight=False)
    if not verdict.passed:
        out.print(f"[red bold]{len(verdict.failed)} gate(s) failed[/]")


# a comparison ---------------------------------------------------------------------------
def print_comparison(comparison: Comparison) -> None:
    """Each metric's paired test as a table, then the queries and causes that changed."""
    table = Table(title=f"{comparison.baseline_run_id} → {comparison.run_id} · "
                        f"{comparison.shared_queries} shared queries")
    for column in ("metric", "n", "A", "B", "Δ", "95% CI", "p", "p (Holm)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metrics:
        significant = m.p_holm is not None and m.p_holm < comparison.alpha
        delta = MISSING if m.delta is None else f"{m.delta:+.4f}"
        table.add_row(m.metric, str(m.n), fixed(m.baseline_mean), fixed(m.current_mean),
                      f"[bold]{delta}[/]" if significant else delta,
                      interval(m.ci_low, m.ci_high), p_value(m.p_value), p_value(m.p_holm))
    out.print(table)
    if comparison.sampled:
        sampled = comparison.sampled
        out.print(f"{sampled['sampled']}: the whole log's change, 95% CI under the sample's "
                  "design: " + " · ".join(
                      f"{metric} {fixed(c['delta'], signed=True)} "
                      f"{interval(c['ci_low'], c['ci_high'])}"
                      for metric, c in sampled["changes"].items()), markup=False)
    out.print(f"regressed {comparison.regressed_total}, improved {comparison.improved_total}")
    for label, changes in (("▼", comparison.regressed[:15]), ("▲", comparison.improved[:5])):
        for c in changes:
            out.print(f"  {label} {escape(c.query_id)} {c.metric} {c.baseline:.3f} → "
                      f"{c.current:.3f}  {escape(', '.join(c.causes_after))}")
    for label, counts, total in (
        ("new", comparison.new_cause_counts, comparison.new_causes_total),
        ("resolved", comparison.resolved_cause_counts, comparison.resolved_causes_total),
    ):
        if counts:
            out.print(f"{label} causes ({total} query-cause pairs): "
                      + ", ".join(f"{c['cause']} ({c['queries']})" for c in counts))
    drift = comparison.drift
    if drift.get("not_evaluated"):
        out.print(f"result lists: not evaluated, {escape(drift['not_evaluated'])}")
    elif drift.get("n"):
        out.print(f"result lists: overlap@{drift['k']} {fixed(drift['overlap'])}, RBO "
                  f"{fixed(drift['rbo'])}, {drift['changed']} of {drift['n']} changed")
