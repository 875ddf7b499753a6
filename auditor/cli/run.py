"""Commands that produce results: ``run`` (replay, score, store, gate), ``demo`` and
``index build``. Each audit goes through :func:`audit` and :func:`publish_verdict`, which
``schedule`` and ``gate`` share.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from auditor.cli.options import BaselineOpt, ConfigOpt, StoreOpt, VerboseOpt
from auditor.cli.render import err, out, print_run, progress
from auditor.config import AuditSettings, ConfigError, load_settings
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.verdict import Verdict

FLUSH_EVERY = 8192  # cached embeddings written during an index build, at most this many held


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
    """Chunk, embed (through the store's cache) and index the corpus; says what was built."""
    from auditor.corpus_reader import read_corpus
    from auditor.embed import CachedEncoder

    if settings.corpus is None:
        raise ConfigError("no corpus given: set `corpus` in audit.toml or pass --corpus")
    chunks = list(read_corpus(settings.corpus, settings.chunk_words))
    results = Store(settings.store)
    encoder = CachedEncoder.named(settings.encoder, results) if vectors else None
    with progress() as bar:
        task = bar.add_task("embedding chunks" if vectors else "indexing", total=len(chunks))

        def advance(n: int) -> None:
            bar.advance(task, n)
            if encoder is not None and len(encoder.pending) >= FLUSH_EVERY:
                encoder.flush()  # keeps memory flat on a large corpus

        if settings.backend == "elasticsearch":
            from auditor.backends.elasticsearch import ElasticsearchBackend, ElasticsearchOptions

            options = ElasticsearchOptions.from_settings(settings)
            ElasticsearchBackend.build(options, chunks, encoder, progress=advance)
            where = f"{settings.es_url} index {settings.es_index}"
        else:
            from auditor.backends.embedded import EmbeddedBackend

            EmbeddedBackend.build(chunks, settings.index, encoder, progress=advance)
            where = str(settings.index)
        bar.update(task, completed=len(chunks))
        if encoder is not None:  # what audits embed from the corpus, cached now (once)
            from auditor.prefetch import prefetch

            task = bar.add_task("embedding passages, windows, probes", total=None)  # advance moves
            prefetch(encoder, chunks, advance)
    if encoder is None:
        return f"{len(chunks)} chunks into {where}"
    encoder.flush()
    rate = encoder.stats.hit_rate or 0.0
    return f"{len(chunks)} chunks into {where} (embedding cache: {rate:.0%} hits)"


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
    sample: Annotated[int | None, typer.Option(help="audit N queries of the log")] = None,
    sample_rate: Annotated[float | None, typer.Option(
        help="audit this share of the log, in (0, 1]")] = None,
    stratify_by: Annotated[str | None, typer.Option(
        help="sample strata: a metadata key, or day / hour of logged_at")] = None,
    seed: Annotated[int | None, typer.Option(
        help="sample seed (default 0): the same seed picks the same queries")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
    verbose: VerboseOpt = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="read the log and time a few queries; print the expected cost, "
                          "store nothing")] = False,
    budget: Annotated[str | None, typer.Option(
        help="with --dry-run: a time budget (90m, 2h, 1h30m); suggests a --sample")] = None,
    executor: Annotated[str | None, typer.Option(
        help="local | ray: audit the queries on a pool of Ray actors")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="with --executor ray: the cluster's host:port (default: Ray inside the run)")] = None,
    workers: Annotated[int | None, typer.Option(help="with --executor ray: Ray actors")] = None,
) -> None:
    """Replay the log, score and store the run, gate it against the baseline, report.

    Exit 1 when a gate fails.
    """
    if sample is not None and sample_rate is not None:
        raise ConfigError("--sample N and --sample-rate r exclude each other: give one")
    if dry_run or budget is not None:
        cost_up_front(load_settings(
            config, log=log, qrels=qrels, store=store, backend=backend, mode=mode,
            k=parse_ks(k), depth=depth, level=level, index=index, sample=sample,
            sample_rate=sample_rate, stratify_by=stratify_by, seed=seed), dry_run, budget,
            as_json, resume)
        return
    if resume is not None:
        from auditor.audit import resume_settings

        where = load_settings(config, store=store).store
        stored = resume_settings(Store(where), resume)
        cluster = {"executor": executor, "ray_address": ray_address, "workers": workers}
        settings = load_settings(config, **{**stored, "store": where, "baseline": baseline,
                                            **{k: v for k, v in cluster.items() if v}})
    else:
        settings = load_settings(
            config, log=log, qrels=qrels, store=store, backend=backend, mode=mode,
            k=parse_ks(k), depth=depth, level=level, index=index, baseline=baseline,
            sample=sample, sample_rate=sample_rate, stratify_by=stratify_by, seed=seed,
            executor=executor, ray_address=ray_address, workers=workers,
        )
    results = Store(settings.store)
    run_id = audit(settings, resume)
    with results.held():  # some 30 short reads and writes: one connection, not one each
        verdict = publish_verdict(results, run_id, settings, quiet=as_json)
        print_run(results, run_id, as_json, verdict, verbose=verbose, k=settings.diagnose_k,
                  flags=flags(store, config))
    raise typer.Exit(verdict.exit_code)


def cost_up_front(settings: AuditSettings, dry_run: bool, budget: str | None, as_json: bool,
                  resume: str | None) -> None:
    """``--dry-run``: the expected wall time and embeddings (see :mod:`auditor.dry_run`)."""
    from auditor.dry_run import describe, parse_budget
    from auditor.dry_run import dry_run as estimate

    if not dry_run:
        raise ConfigError("--budget goes with --dry-run: add --dry-run to see what fits")
    if resume is not None:
        raise ConfigError("--dry-run estimates a new run: leave out --resume")
    result = estimate(settings, parse_budget(budget) if budget is not None else None)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in describe(result):
            out.print(line, markup=False, highlight=False)


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
    run_id = audit(settings)
    verdict = publish_verdict(results, run_id, settings)
    print_run(results, run_id, as_json=False, verdict=verdict, verbose=verbose,
              k=settings.diagnose_k, flags=flags(None, config))
    if not no_dashboard and sys.stdin.isatty() and sys.stdout.isatty():
        from auditor.cli.dashboard import serve_dashboard

        serve_dashboard(settings.store, port=port)


def audit(settings: AuditSettings, resume: str | None = None) -> str:
    """One audit run behind a progress bar; returns its run id."""
    from auditor.audit import run_audit

    if settings.executor == "ray":
        from auditor.distributed import run_distributed as run_audit
    total = None if settings.sampled else count_lines(settings.log)  # n is known later
    with progress() as bar:
        task = bar.add_task(f"replaying ({escape(settings.mode)})", total=total)
        if resume is not None:
            done = (Store(settings.store).run(resume)["counts"] or {}).get("replayed", 0)
            bar.update(task, completed=done)
        run_id, _ = run_audit(settings, progress=lambda n: bar.advance(task, n), resume=resume)
    return run_id


def publish_verdict(store: Store, run_id: str, settings: AuditSettings, quiet: bool = False
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


def flags(store: Path | None, config: Path | None) -> str:
    """The options that chose the results, repeated in the commands the summary suggests."""
    given = [("--store", store), ("--config", config)]
    return "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given if value)


def parse_ks(text: str | None) -> list[int] | None:
    """``--k 1,5,10`` as cut-offs; a typo is a config error naming the option."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"--k takes comma-separated whole numbers, got {text!r}") from None


def count_lines(path: Path | None) -> int | None:
    """Total for the progress bar when cheap to know (JSONL: count newlines)."""
    if path is None or not path.is_file() or path.suffix.lower() not in (".jsonl", ".ndjson"):
        return None
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
