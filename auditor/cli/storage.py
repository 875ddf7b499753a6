"""Keeping the results store small over years of nights: ``auditor prune``."""

from __future__ import annotations

from typing import Annotated

import typer

from auditor.cli.options import ConfigOpt, StoreOpt
from auditor.cli.render import out
from auditor.config import ConfigError, load_settings
from auditor.store import Store


def prune(
    keep_hits_days: Annotated[int | None, typer.Option(
        min=0, help="keep the hits of runs started in the last N days; drop older runs' hits")
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Drop the per-hit rows of runs older than N days; run records, per-query metrics,
    sentences, causes and verdicts are kept forever (their pages say "hits pruned")."""
    if keep_hits_days is None:  # an option, not an argument: the number must be named
        raise ConfigError("say how many days of hits to keep: auditor prune --keep-hits-days N")
    settings = load_settings(config, store=store)
    target = Store(settings.store)
    before = target.path.stat().st_size if target.path.exists() else 0
    pruned = target.prune_hits(keep_hits_days)
    if not pruned:
        out.print(f"nothing to prune: no finished run older than {keep_hits_days} days still "
                  "holds hits", markup=False, highlight=False)
        return
    for run in pruned:
        out.print(f"{run.run_id} (started {run.started_at:%Y-%m-%d}): dropped {run.rows:,} "
                  "hits", markup=False, highlight=False)
    after = target.path.stat().st_size
    out.print(f"dropped {sum(run.rows for run in pruned):,} hits of {len(pruned)} run(s); "
              f"{target.path} {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (DuckDB reuses "
              "freed blocks for the next runs)", markup=False, highlight=False)
