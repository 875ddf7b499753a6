"""``auditor judgments weak``: automatic label sources (silver, cited, llm:<model>) measured
against people's labels, by κ on the pairs both judged and Kendall's τ between the system
rankings each induces over the stored runs; and the one-line note ``auditor rescore``
prints when it measures a run with an automatic source."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from auditor.cli.options import ConfigOpt, JsonOpt, StoreOpt
from auditor.cli.render import out
from auditor.config import load_settings
from auditor.errors import AuditorError
from auditor.judging import AUTOMATIC, kind, resolve
from auditor.numerals import fixed, p_value
from auditor.store import Store
from auditor.weak_judges import WeakJudge, WeakReport, weak_judges


def weak(
    people: Annotated[str, typer.Argument(help="NAME or NAME@VERSION people judged")],
    against: Annotated[list[str] | None, typer.Option(
        "--weak", help="another list holding automatic labels (repeatable), e.g. cited")
    ] = None,
    metric: Annotated[str, typer.Option(help="the metric that ranks the stored runs")
                      ] = "ndcg@10",
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How well automatic labels stand in for people's: κ and Kendall's τ over the runs."""
    report = weak_judges(Store(load_settings(config, store=store).store), people,
                         tuple(against or ()), metric)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2, default=str))
        return
    out.print(Text(f"against {report.people} ({', '.join(report.people_sources)}); runs "
                   f"ranked by {report.metric}"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, highlight=False)
    for column in ("source", "from", "pairs", "shared", "κ relevant", "κ linear",
                   "τ runs", "p", "runs"):
        table.add_column(column, justify="left" if column in ("source", "from") else "right")
    for judge in report.judges:
        table.add_row(Text(judge.source), Text(judge.judgments), str(judge.pairs),
                      str(judge.overlap), fixed(judge.kappa), fixed(judge.kappa_linear),
                      fixed(judge.tau), p_value(judge.p_value), str(judge.ranked_runs))
    out.print(table)
    for judge in report.judges:
        if judge.reason:
            out.print(Text(f"{judge.source}: τ not evaluated: {judge.reason}"))


def rescore_notes(store: Store, run_id: str, spec: str, used: set[str]) -> list[str]:
    """What ``auditor rescore`` says next to metrics measured with automatic labels: how
    each such source agrees with the people's list the run recorded."""
    automatic = {source for source in used if kind(source) in AUTOMATIC}
    if not automatic:
        return []
    recorded = (store.run(run_id).get("manifest") or {}).get("judgments") or {}
    if not recorded.get("list"):
        return [f"{', '.join(sorted(automatic))}: automatic labels, and the run names no "
                "people's list to measure them against (`auditor judgments weak`)"]
    people, measured = f"{recorded['list']}@{recorded['version']}", resolve(store, spec).spec
    try:
        report = weak_judges(store, people, () if measured == people else (measured,))
    except AuditorError as exc:  # no people's labels there, or that version is gone
        return [f"{', '.join(sorted(automatic))}: automatic labels, not measured against "
                f"people: {exc}"]
    return [note(judge, report) for judge in report.judges if judge.source in automatic
            and judge.judgments == measured]


def note(judge: WeakJudge, report: WeakReport) -> str:
    """One line saying how far an automatic source agrees with people."""
    tau = (f"τ {fixed(judge.tau)} over {judge.ranked_runs} runs ({report.metric})"
           if judge.tau is not None else f"τ not evaluated ({judge.reason})")
    return (f"{judge.source} is an automatic source: against {report.people} it has κ "
            f"{fixed(judge.kappa)} on {judge.overlap} shared pairs and {tau} "
            "(`auditor judgments weak`)")
