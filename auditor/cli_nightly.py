"""The nightly and browsing commands of ``auditor``: compare, report, gate, export, schedule
and dashboard. Registered on the app of :mod:`auditor.cli`, which owns settings, output and
exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from auditor.cli import (
    BaselineOpt,
    ConfigOpt,
    StoreOpt,
    _audit,
    _fmt,
    _print_verdict,
    _verdict,
    app,
    err,
    out,
)
from auditor.config import ConfigError, load_settings
from auditor.store import Store


@app.command()
def compare(
    baseline_run: Annotated[str, typer.Argument(help="the earlier run (A)")],
    run_id: Annotated[str, typer.Argument(help="the later run (B)")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    metrics: Annotated[str | None, typer.Option(help="comma-separated metrics to test")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Compare two runs on their shared queries (deltas, 95% CIs, Holm p-values).

    Also lists regressed and improved queries, new and resolved causes, and drift.
    """
    from auditor.compare import compare_runs

    settings = load_settings(config, store=store)
    names = metrics.split(",") if metrics else None
    comparison = compare_runs(Store(settings.store), baseline_run, run_id,
                              metrics=names,
                              k=settings.diagnose_k)
    if as_json:
        typer.echo(json.dumps(comparison.to_dict(), indent=2, default=str))
        return
    _print_comparison(comparison)


def _print_comparison(comparison: Any) -> None:
    from rich.markup import escape

    table = Table(title=f"{comparison.baseline_run_id} → {comparison.run_id} · "
                        f"{comparison.shared_queries} shared queries")
    for column in ("metric", "n", "A", "B", "Δ", "95% CI", "p", "p (Holm)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metrics:
        ci = "—" if m.ci_low is None else f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
        significant = m.p_holm is not None and m.p_holm < comparison.alpha
        delta = "—" if m.delta is None else f"{m.delta:+.4f}"
        table.add_row(m.metric, str(m.n), _fmt(m.baseline_mean), _fmt(m.current_mean),
                      f"[bold]{delta}[/]" if significant else delta, ci,
                      _p(m.p_value), _p(m.p_holm))
    out.print(table)
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
    if drift.get("n"):
        out.print(f"result lists: overlap@{drift['k']} {_fmt(drift['overlap'])}, RBO "
                  f"{_fmt(drift['rbo'])}, {drift['changed']} of {drift['n']} changed")


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


@app.command()
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


@app.command()
def gate(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    baseline: BaselineOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Judge a stored run again (new gates or another baseline). Exit 1 when a gate fails.

    Every verdict is kept: this one becomes the latest, the earlier ones stay in the store's
    history and their reports move to verdict-N/ beside the new ones.
    """
    settings = load_settings(config, store=store, baseline=baseline)
    results = Store(settings.store)
    verdict = _verdict(results, run_id, settings, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(verdict.gate_json(), indent=2, default=str))
    else:
        _print_verdict(verdict)
        if verdict.earlier:
            last = verdict.earlier[0]
            out.print(f"verdict {verdict.number} on run {run_id}: it was judged before "
                      f"(verdict {last.verdict_id}: {last.gate_status}, "
                      f"{str(last.created_at)[:19]}); earlier verdicts are kept, "
                      "their reports in verdict-N/", highlight=False)
    if not verdict.passed:
        raise typer.Exit(1)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    run_file: Annotated[Path, typer.Option(help="TREC run file to write")],
    qrels_file: Annotated[Path | None, typer.Option(help="TREC qrels file to write")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a run's ranked lists (and its judgments) as TREC files for trec_eval or ranx."""
    from auditor.interop import export_trec

    settings = load_settings(config, store=store)
    rows, judged = export_trec(Store(settings.store), run_id, run_file, qrels_file)
    out.print(f"wrote {rows} ranked rows to {run_file}"  # paths are text, never markup
              + (f" and {judged} judgments to {qrels_file}" if qrels_file else ""),
              markup=False, highlight=False)


@app.command()
def schedule(
    cron: Annotated[str | None, typer.Option(help='crontab line, e.g. "0 2 * * *"')] = None,
    config: ConfigOpt = None,
    run_now: Annotated[bool, typer.Option(help="also run once right away")] = False,
    max_runs: Annotated[int | None, typer.Option(help="stop after this many runs")] = None,
    timezone: Annotated[str | None, typer.Option(help="e.g. Europe/Berlin (default: local)")
                        ] = None,
) -> None:
    """Run the configured audit on a schedule (gates, reports, alerts) and keep running."""
    from auditor.schedule import serve

    settings = load_settings(config, cron=cron)

    def nightly() -> None:
        fresh = load_settings(config, cron=cron)  # pick up edits to the config each night
        results = Store(fresh.store)
        run_id = _audit(fresh)
        verdict = _verdict(results, run_id, fresh)
        words = verdict.gate_status.replace("_", " ")
        out.print(f"run {run_id}: {verdict.status}, gates "
                  + (words if verdict.passed else
                     f"FAILED ({'; '.join(g.reason for g in verdict.failed)})"),
                  markup=False, highlight=False)

    serve(settings.cron, nightly, run_now=run_now, max_runs=max_runs, timezone=timezone,
          say=lambda line: out.print(line, markup=False, highlight=False))


@app.command()
def dashboard(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8501,
    address: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Open the Streamlit dashboard on a results store (read-only)."""
    settings = load_settings(config, store=store)
    serve_dashboard(settings.store, port=port, address=address)


def serve_dashboard(store: Path, port: int, address: str = "127.0.0.1") -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM (it only reads the store)."""
    from auditor.dashboard_server import serve

    if not store.exists():
        raise ConfigError(f"no results store at {store}: run `auditor run` (or `auditor demo`) "
                          "first, or pass --store")
    out.print(f"dashboard on http://{address}:{port} (Ctrl-C stops it)", markup=False,
              highlight=False)
    serve(store.resolve(), port=port, address=address)  # its child dies with it
