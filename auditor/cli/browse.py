"""Commands that read stored runs without changing them: ``runs``, ``compare``, ``report`` and
``export``.
"""

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
from auditor.cli.render import err, out, print_comparison
from auditor.config import ConfigError, load_settings
from auditor.metrics import check_metric_name
from auditor.store import Store
from auditor.store.read.run_facts import run_extras


def runs(store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs in a results store, newest first: whole ids, verdict, mode and log."""
    settings = load_settings(config, store=store)
    results = Store(settings.store)
    rows = [{**row, **_run_extras(results).get(row["run_id"], {})} for row in results.runs()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=str(settings.store), title_justify="left", highlight=False,
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("run_id", "started", "status", "verdict", "backend", "mode", "queries", "log"):
        table.add_column(column, no_wrap=column == "run_id", overflow="fold",
                         min_width=max((len(r["run_id"]) for r in rows), default=6)
                         if column == "run_id" else None,
                         justify="right" if column == "queries" else "left")
    for row in rows:
        counts = json.loads(row["counts"]) if isinstance(row["counts"], str) else row["counts"]
        table.add_row(*(Text(str(value)) for value in (  # Text: ids and paths are not markup
            row["run_id"], str(row["started_at"])[:16], row["status"],
            (row.get("gate_status") or "—").replace("_", " "), row["backend"],
            f"{row['mode']} · {row['level']}", (counts or {}).get("replayed", ""),
            row.get("log") or "—")))
    out.print(table)



def migrate(store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Upgrade a results store written by an older auditor (readers also do it on open)."""
    settings = load_settings(config, store=store)
    applied = Store(settings.store).ensure_current()
    out.print(Text(f"{settings.store}: applied {', '.join(applied)}" if applied
                   else f"{settings.store} is up to date"))

def _run_extras(store: Store) -> dict[str, dict[str, Any]]:
    """Each run's verdict and log file, which the listing shows beside the stored columns."""
    return {run_id: asdict(extras) for run_id, extras in run_extras(store).items()}


def compare(
    baseline_run: Annotated[str, typer.Argument(help="the earlier run (A)")],
    run_id: Annotated[str, typer.Argument(help="the later run (B)")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    metrics: Annotated[str | None, typer.Option(help="comma-separated metrics to test")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare two runs on their shared queries (deltas, 95% CIs, Holm p-values).

    Also lists regressed and improved queries, new and resolved causes, and drift.
    """
    from auditor.compare import compare_runs

    settings = load_settings(config, store=store)
    # a misspelt name is one sentence naming the closest known metric (exit 2)
    names = [check_metric_name(name) for name in metrics.split(",") if name.strip()] \
        if metrics else None
    comparison = compare_runs(Store(settings.store), baseline_run, run_id,
                              metrics=names,
                              k=settings.diagnose_k)
    if as_json:
        typer.echo(json.dumps(comparison.to_dict(), indent=2, default=str))
        return
    print_comparison(comparison)


def report(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="md | html | json | junit")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="write here instead of stdout")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    standalone: Annotated[bool, typer.Option(
        help="HTML: inline plotly.js (one ≈5 MB file) instead of sharing "
             "assets/plotly-*.min.js beside the output")] = False,
) -> None:
    """Render a run's report: Markdown, HTML with charts (readable offline), JSON or JUnit XML.

    HTML written with -o links one shared plotly.js in an assets/ folder beside the file;
    to stdout, or with --standalone, it is inlined.
    """
    from auditor import report as reporting

    renderers = {"md": reporting.render_markdown, "html": reporting.render_html,
                 "json": reporting.render_json, "junit": reporting.render_junit}
    if fmt not in renderers:
        raise ConfigError(f"--format takes md, html, json or junit, not {fmt!r}")
    settings = load_settings(config, store=store)
    data = reporting.build_report(Store(settings.store), run_id)
    if fmt == "html" and output is not None and not standalone:
        where = output.resolve().parent
        text = reporting.render_html(data, plotly_src=reporting.asset_src(where, where))
    else:
        text = renderers[fmt](data)
    if output is None:
        typer.echo(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}", markup=False, highlight=False)


def export(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    run_file: Annotated[Path | None, typer.Option(help="TREC run file to write")] = None,
    qrels_file: Annotated[Path | None, typer.Option(help="TREC qrels file to write")] = None,
    parquet: Annotated[Path | None, typer.Option(
        help="also write every table's rows of the run as hive-partitioned Parquet here "
             "(DIR/<table>/run_date=YYYY-MM-DD/)")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a run's ranked lists (and its judgments) as TREC files for trec_eval or ranx,
    or its facts as Parquet for a lakehouse."""
    from auditor.interop import export_trec

    settings = load_settings(config, store=store)
    if run_file is None and parquet is None:
        raise ConfigError("say what to write: --run-file FILE (TREC) or --parquet DIR")
    if parquet is not None:
        tables = Store(settings.store).export_parquet(run_id, parquet)
        out.print(f"wrote {sum(tables.values()):,} rows of {len(tables)} tables to {parquet}",
                  markup=False, highlight=False)
    if run_file is None:
        return
    rows, judged = export_trec(Store(settings.store), run_id, run_file, qrels_file)
    out.print(f"wrote {rows} ranked rows to {run_file}"  # paths are text, never markup
              + (f" and {judged} judgments to {qrels_file}" if qrels_file else ""),
              markup=False, highlight=False)
