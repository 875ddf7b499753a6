"""The ``auditor`` command. The only place that configures logging, reads settings and
decides exit codes: 0 ok, 1 a gate failed, 2 an error (one sentence, no traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import NoArgsIsHelpError  # typer bundles click since 0.26

from auditor.backends import BackendError
from auditor.config import AuditSettings, ConfigError, load_settings
from auditor.errors import AuditorError
from auditor.metrics import MetricNameError
from auditor.store import Store, StoreError

if TYPE_CHECKING:
    from auditor.verdict import Verdict

app = typer.Typer(
    help="Replay logged RAG queries against an index and measure what retrieval gives the model.",
    no_args_is_help=True,
    add_completion=False,
)
index_app = typer.Typer(help="Build search indices.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _console(stderr: bool = False) -> Console:
    """A terminal wraps at its width; a pipe or a file gets whole lines (no 80-column wrap)."""
    terminal = Console(stderr=stderr).is_terminal
    wide = terminal or "COLUMNS" in os.environ
    return Console(stderr=stderr, soft_wrap=not terminal, width=None if wide else 200)


out = _console()
err = _console(stderr=True)
FLUSH_EVERY = 8192  # cached embeddings written during an index build, at most this many held
USER_ERRORS = (AuditorError, BackendError, StoreError, MetricNameError)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="settings file (default: ./audit.toml)")
]
StoreOpt = Annotated[Path | None, typer.Option(help="DuckDB results file")]


def _quiet_libraries() -> None:
    """Model loading and tokenizers print bars of their own; ours are enough."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def _count_lines(path: Path | None) -> int | None:
    """Total for the progress bar when cheap to know (JSONL: count newlines)."""
    if path is None or not path.is_file() or path.suffix.lower() not in (".jsonl", ".ndjson"):
        return None
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@index_app.command("build")
def index_build(
    config: ConfigOpt = None,
    corpus: Annotated[Path | None, typer.Option(help="BEIR corpus.jsonl or chunk file")] = None,
    index: Annotated[Path | None, typer.Option(help="embedded index directory")] = None,
    backend: Annotated[str | None, typer.Option(help="embedded | elasticsearch")] = None,
    encoder: Annotated[str | None, typer.Option(help="minilm | hash")] = None,
    chunk_words: Annotated[int | None, typer.Option(help="split documents into ~N words")] = None,
    no_vectors: Annotated[bool, typer.Option(help="BM25 only: skip embeddings")] = False,
) -> None:
    """Index a corpus (embedded index by default)."""
    settings = load_settings(
        config, corpus=corpus, index=index, backend=backend, encoder=encoder,
        chunk_words=chunk_words,
    )
    built = build_index(settings, vectors=not no_vectors)
    out.print(f"[green]indexed[/] {escape(built)}")


def build_index(settings: AuditSettings, vectors: bool = True) -> str:
    from auditor.embed import CachedEncoder, load_encoder
    from auditor.logs import read_corpus

    if settings.corpus is None:
        raise ConfigError("no corpus given: set `corpus` in audit.toml or pass --corpus")
    chunks = list(read_corpus(settings.corpus, settings.chunk_words))
    results = Store(settings.store)
    encoder = CachedEncoder(load_encoder(settings.encoder), results) if vectors else None
    with _progress() as bar:
        task = bar.add_task("embedding chunks" if vectors else "indexing", total=len(chunks))

        def advance(n: int) -> None:
            bar.advance(task, n)
            if encoder is not None and len(encoder.pending) >= FLUSH_EVERY:
                encoder.flush()  # keeps memory flat on a large corpus

        if settings.backend == "elasticsearch":
            from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions

            ElasticsearchBackend.build(ElasticsearchOptions.from_settings(settings), chunks,
                                       encoder, progress=advance)
            where = f"{settings.es_url} index {settings.es_index}"
        else:
            from auditor.backends.embedded import EmbeddedBackend

            EmbeddedBackend.build(chunks, settings.index, encoder, progress=advance)
            where = str(settings.index)
        bar.update(task, completed=len(chunks))
    if encoder is None:
        return f"{len(chunks)} chunks into {where}"
    encoder.flush()
    rate = encoder.stats.hit_rate or 0.0
    return f"{len(chunks)} chunks into {where} (embedding cache: {rate:.0%} hits)"


BaselineOpt = Annotated[str | None, typer.Option(
    help="gate against: last | last-passing | RUN_ID | none")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="also print every measure, cause and gate as tables")]


@app.command()
def run(
    config: ConfigOpt = None,
    log: Annotated[Path | None, typer.Option(help="query log (JSONL, Parquet, CSV, BEIR)")] = None,
    qrels: Annotated[Path | None, typer.Option(help="judgments (TREC or BEIR qrels)")] = None,
    store: StoreOpt = None,
    backend: Annotated[str | None, typer.Option(help="embedded | elasticsearch")] = None,
    mode: Annotated[str | None, typer.Option(help="bm25 | dense (knn) | hybrid | template")] = None,
    k: Annotated[str | None, typer.Option(help="cut-offs, e.g. 1,5,10,100")] = None,
    depth: Annotated[int | None, typer.Option(help="hits fetched per query")] = None,
    level: Annotated[str | None, typer.Option(help="doc | chunk")] = None,
    index: Annotated[Path | None, typer.Option(help="embedded index directory")] = None,
    baseline: BaselineOpt = None,
    resume: Annotated[str | None, typer.Option(
        help="continue this unfinished run (its stored settings are used)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Replay the log, score and store the run, gate it against the baseline, report.

    Exit 1 when a gate fails.
    """
    if resume is not None:
        from auditor.audit import resume_settings

        where = load_settings(config, store=store).store
        stored = resume_settings(Store(where), resume)
        settings = load_settings(config, **{**stored, "store": where, "baseline": baseline})
    else:
        settings = load_settings(
            config, log=log, qrels=qrels, store=store, backend=backend, mode=mode,
            k=_parse_ks(k), depth=depth, level=level, index=index, baseline=baseline,
        )
    results = Store(settings.store)
    run_id = _audit(settings, resume)
    verdict = _verdict(results, run_id, settings, quiet=as_json)
    _report(results, run_id, as_json, verdict, verbose=verbose, k=settings.diagnose_k,
            flags=_flags(store, config))
    raise typer.Exit(verdict.exit_code)


def _flags(store: Path | None, config: Path | None) -> str:
    """The options that chose the results, repeated in the commands the summary suggests."""
    import shlex

    given = [("--store", store), ("--config", config)]
    return "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given if value)


def _audit(settings: AuditSettings, resume: str | None = None) -> str:
    """One audit run behind a progress bar; returns its run id."""
    from auditor.audit import run_audit

    total = _count_lines(settings.log)
    with _progress() as bar:
        task = bar.add_task(f"replaying ({escape(settings.mode)})", total=total)
        if resume is not None:
            done = (Store(settings.store).run(resume)["counts"] or {}).get("replayed", 0)
            bar.update(task, completed=done)
        run_id, _ = run_audit(settings, progress=lambda n: bar.advance(task, n), resume=resume)
    return run_id


def _verdict(store: Store, run_id: str, settings: AuditSettings, quiet: bool = False
             ) -> Verdict:
    """Gate the run, write its reports, alert when a gate failed."""
    from auditor.nightly import judge, publish

    verdict = publish(store, judge(store, run_id, settings), settings)
    if verdict.alert is not None and not quiet:
        alert = verdict.alert
        if alert.delivered:
            out.print(f"alert posted to the webhook ({alert.attempts} attempt(s))")
        else:
            err.print(f"[yellow]alert not delivered[/] after {alert.attempts} attempt(s): "
                      f"{escape(str(alert.error))}")
    return verdict


def _parse_ks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"--k takes comma-separated whole numbers, got {text!r}") from None


def _metrics_table(data: dict[str, Any], title: str, names: list[str]) -> Table:
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
        cells = ["—" if row.get(k, {}).get("mean") is None else f"{row[k]['mean']:.4f}" for k in ks]
        table.add_row(measure, *cells, str(max(value["n"] for value in row.values())))
    return table


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _report(store: Store, run_id: str, as_json: bool, verdict: Verdict | None = None, *,
            verbose: bool = False, k: int = 10, flags: str = "") -> None:
    """The summary a person reads first (verdict, causes, next command); tables if verbose."""
    from auditor.cli_summary import summary_lines
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
        _details(store, run_id, data)
        if verdict is not None:
            _print_verdict(verdict)


def _details(store: Store, run_id: str, data: dict[str, Any]) -> None:
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
    out.print(_metrics_table(
        data, f"{data['mode']} · {data['level']} level · mean over queries with judgments",
        ranking))
    if others:
        out.print(_metrics_table(data, "answers, scatter and drift (silver = from answer "
                                       "evidence, not judgments)", others))
    if data["sentences"]:
        out.print("answer sentences: " + ", ".join(
            f"{status} {n}" for status, n in sorted(data["sentences"].items())))
    if data["causes"]:
        out.print(_causes_table(data["causes"]))
    corpus = data["corpus"]
    if corpus:
        k = corpus["k"]
        out.print(
            f"corpus: {corpus['documents']} documents, coverage@{k} "
            f"{_fmt(corpus.get(f'corpus_coverage@{k}'))}, gini {_fmt(corpus.get('gini'))}, "
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


def _causes_table(causes: dict[str, dict[str, Any]]) -> Table:
    """Failure causes; drift below them, apart (a difference from production, not a failure)."""
    from auditor.diagnose import DRIFT

    table = Table(title="why retrieval failed (queries per cause)")
    for column in ("cause", "queries", "share"):
        table.add_column(column, justify="left" if column == "cause" else "right")
    for cause, value in sorted(causes.items(), key=lambda item: item[0] == DRIFT):
        if cause == DRIFT:
            table.add_section()
            cause = f"{DRIFT} (not a failure)"
        table.add_row(cause, str(value["queries"]), f"{value['share']:.0%}")
    return table


def _print_verdict(verdict: Verdict) -> None:

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


@app.command()
def runs(store: StoreOpt = None, config: ConfigOpt = None, as_json: bool = typer.Option(
    False, "--json", help="print JSON"
)) -> None:
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


@app.command()
def migrate(store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Upgrade a results store written by an older auditor (readers also do it on open)."""
    settings = load_settings(config, store=store)
    applied = Store(settings.store).ensure_current()
    out.print(Text(f"{settings.store}: applied {', '.join(applied)}" if applied
                   else f"{settings.store} is up to date"))


def _run_extras(store: Store) -> dict[str, dict[str, Any]]:
    """Each run's verdict and log file, which the listing shows beside the stored columns."""
    with store.connect(read_only=True) as con:
        found = con.execute(
            "SELECT run_id, gate_status, json_extract_string(config, '$.log') FROM runs"
        ).fetchall()
    return {run_id: {"gate_status": status, "log": log} for run_id, status, log in found}


@app.command()
def trace(
    query_id: Annotated[str, typer.Argument(help="the logged query id")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: latest)")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one answer sentence by sentence with its sources, and why retrieval failed."""
    from auditor.cli_trace import print_trace, trace_json

    settings = load_settings(config, store=store)
    results = Store(settings.store)
    run_id = run_id or results.latest_run_with(query_id)
    data = results.query_trace(run_id, query_id)
    if as_json:
        typer.echo(json.dumps(trace_json(run_id, data), indent=2, default=str))
    else:
        print_trace(out, run_id, data)


@app.command()
def demo(
    no_dashboard: Annotated[bool, typer.Option(help="do not start the dashboard")] = False,
    port: Annotated[int, typer.Option(help="dashboard port on 127.0.0.1")] = 8501,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Index the bundled fixtures, audit them, print the summary, open the dashboard.

    The dashboard only starts from an interactive terminal (not in CI or a pipe).
    """
    settings = load_settings(config)
    out.print(f"[bold]1/2[/] indexing {escape(str(settings.corpus))} → "
              f"{escape(str(settings.index))}")
    out.print(build_index(settings), markup=False)
    out.print(f"[bold]2/2[/] auditing {escape(str(settings.log))} ({settings.mode})")
    results = Store(settings.store)
    run_id = _audit(settings)
    _report(results, run_id, as_json=False, verdict=_verdict(results, run_id, settings),
            verbose=verbose, k=settings.diagnose_k, flags=_flags(None, config))
    if not no_dashboard and sys.stdin.isatty() and sys.stdout.isatty():
        from auditor.cli_nightly import serve_dashboard

        serve_dashboard(settings.store, port=port)


def main() -> None:
    """Run the app; every way it can end maps to an exit code and at most one line on stderr."""
    _quiet_libraries()
    try:
        code = app(prog_name="auditor", standalone_mode=False)  # returns typer.Exit's code
    except NoArgsIsHelpError:  # `auditor` or `auditor index` alone: typer printed the help
        raise SystemExit(2) from None
    except typer.TyperException as exc:  # typer's bundled click: usage errors and friends
        _fail(_usage_sentence(exc))
    except USER_ERRORS as exc:
        _fail(str(exc))
    except typer.Abort:
        _fail("aborted")
    except KeyboardInterrupt:
        _fail("interrupted (an audit run in progress is kept as partial: `auditor run "
              "--resume RUN_ID` continues it)")
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # a bug: still exit 2 (1 means "a gate failed"), say where to look
        if os.environ.get("AUDITOR_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in auditor; rerun with "
              "AUDITOR_DEBUG=1 for the traceback)")
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _fail(sentence: str) -> NoReturn:
    """One line on stderr, exit 2: nothing the user typed is read as markup."""
    err.print(Text.assemble(("error: ", "red"), sentence.strip()), soft_wrap=True)
    raise SystemExit(2) from None


def _usage_sentence(exc: typer.TyperException) -> str:
    """A usage error as one sentence naming the command, e.g. "missing argument QUERY_ID"."""
    message = exc.format_message().strip().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "auditor"
    return f"{command}: {message[:1].lower()}{message[1:]} (see `{command} --help`)"


# The nightly and browsing commands live in their own module; importing it registers them.
from auditor import cli_nightly  # noqa: E402, F401

if __name__ == "__main__":
    # Run as `python -m auditor.cli`: use the imported module, whose app has every command.
    from auditor.cli import main as registered_main

    registered_main()
