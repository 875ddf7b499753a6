"""The nightly job's commands: ``gate`` (judge a stored run again) and ``schedule`` (run the
configured audit on a cron line). Both judge through :func:`auditor.cli.run.publish_verdict`,
as ``run`` does, so a verdict reads and exits the same whichever command gave it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from auditor.cli.options import BaselineOpt, ConfigOpt, JsonOpt, StoreOpt
from auditor.cli.render import out, print_verdict
from auditor.cli.run import audit, publish_verdict
from auditor.config import load_settings
from auditor.store import Store


def gate(
    run_id: Annotated[str, typer.Argument(help="run id (see `auditor runs`)")],
    baseline: BaselineOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Judge a stored run again (new gates or another baseline). Exit 1 when a gate fails.

    Every verdict is kept: this one becomes the latest, the earlier ones stay in the store's
    history and their reports move to verdict-N/ beside the new ones.
    """
    settings = load_settings(config, store=store, baseline=baseline)
    results = Store(settings.store)
    verdict = publish_verdict(results, run_id, settings, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(verdict.gate_json(), indent=2, default=str))
    else:
        print_verdict(verdict)
        if verdict.earlier:
            last = verdict.earlier[0]
            out.print(f"verdict {verdict.number} on run {run_id}: it was judged before "
                      f"(verdict {last.verdict_id}: {last.gate_status}, "
                      f"{str(last.created_at)[:19]}); earlier verdicts are kept, "
                      "their reports in verdict-N/", highlight=False)
    if not verdict.passed:
        raise typer.Exit(1)


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
        run_id = audit(fresh)
        verdict = publish_verdict(results, run_id, fresh)
        words = verdict.gate_status.replace("_", " ")
        out.print(f"run {run_id}: {verdict.status}, gates "
                  + (words if verdict.passed else
                     f"FAILED ({'; '.join(g.reason for g in verdict.failed)})"),
                  markup=False, highlight=False)

    serve(settings.cron, nightly, run_now=run_now, max_runs=max_runs, timezone=timezone,
          say=lambda line: out.print(line, markup=False, highlight=False))
