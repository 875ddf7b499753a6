"""`auditor gaps RUN`: the run's queries grouped by topic, the topics the corpus cannot
answer first (see :mod:`auditor.gaps`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from auditor.cli.options import ConfigOpt, JsonOpt, StoreOpt
from auditor.cli.render import out
from auditor.config import load_settings
from auditor.errors import AuditorError
from auditor.store import Store


def gaps(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    cluster: Annotated[int | None, typer.Option(
        "--cluster", help="list this cluster's queries with their causes")] = None,
    recompute: Annotated[bool, typer.Option(
        help="cluster again with the configured index and encoder (a run audited before "
             "this view existed, or another seed)")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Knowledge gaps: topics users ask about, their failure share and corpus density."""
    settings = load_settings(config, store=store)
    results = Store(settings.store)
    results.run(run_id)  # an unknown run is one sentence, exit 2
    if recompute:
        _recompute(results, run_id, settings)
    found = results.gap_run(run_id)
    if found is None:
        raise AuditorError(f"run {run_id} has no knowledge gaps stored (audited before this "
                           "view existed): run `auditor gaps RUN --recompute`")
    if cluster is not None:
        _queries(results, run_id, cluster, as_json)
        return
    rows = results.gaps(run_id)
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, **found, "clusters": rows}, indent=2))
        return
    if not rows:
        out.print(f"knowledge gaps: not evaluated ({found['not_evaluated']})", highlight=False)
        return
    out.print(gap_table(rows, found["chunks"]))
    if found["not_evaluated"]:
        out.print(found["not_evaluated"], highlight=False)


def gap_table(rows: list[dict[str, Any]], chunks: int) -> Table:
    table = Table(title=f"Knowledge gaps ({len(rows)} topics; density over {chunks:,} chunks)",
                  title_justify="left")
    for name, justify in (("#", "right"), ("topic", "left"), ("queries", "right"),
                          ("share", "right"), ("failing", "right"), ("density", "right"),
                          ("top causes", "left"), ("unsupported", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        density = row["corpus_density"]
        thin = density is not None and density < row["query_share"]
        table.add_row(
            str(row["cluster"]), row["label"], f"{row['queries']:,}",
            f"{row['query_share']:.0%}", f"{row['failure_share']:.0%}",
            "—" if density is None else f"[{'red' if thin else 'default'}]{density:.1%}[/]",
            ", ".join(f"{cause} {n}" for cause, n in row["top_causes"]),
            f"{row['unsupported']:,}")
    return table


def _queries(results: Store, run_id: str, cluster: int, as_json: bool) -> None:
    rows = results.gap_queries(run_id, cluster)
    if not rows:
        raise AuditorError(f"run {run_id} has no cluster {cluster} (see `auditor gaps "
                           f"{run_id}`)")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Cluster {cluster}: {len(rows)} queries", title_justify="left")
    for name in ("query id", "query", "causes"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["query_id"], row["query"], row["causes"] or "—")
    out.print(table)


def _recompute(results: Store, run_id: str, settings: Any) -> None:
    from auditor.backends import open_backend
    from auditor.embed import CachedEncoder
    from auditor.gaps import measure_gaps

    encoder = CachedEncoder.named(settings.encoder, results)
    measure_gaps(results, run_id, encoder, open_backend(settings, encoder), settings.seed)
    results.append({"embeddings": encoder.take_pending()})
