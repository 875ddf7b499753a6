"""The first lines after a run: the verdict in words and the next command to type.

A person reads these before anything else, so each line is a sentence, drift is kept apart
from failure causes (it is a difference between production and the index today, not a
retrieval failure), and every piece of user data is plain text (never Rich markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from auditor.cases import DRIFT
from auditor.numerals import estimate, fixed
from auditor.store import Store
from auditor.store.read.run_facts import worst_diagnosed_query

if TYPE_CHECKING:
    from auditor.verdict import Verdict

UNSUPPORTED = "unsupported_answer"  # told as "answers hold sentences no document supports"
NAMES = {"ndcg": "nDCG", "mrr": "MRR"}  # how people write the headline measures


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def measure_name(metric: str) -> str:
    name, _, k = metric.partition("@")
    return NAMES.get(name, name) + (f"@{k}" if k else "")


def summary_lines(data: dict[str, Any], verdict: Verdict | None, store: Store, k: int,
                  flags: str = "") -> list[Text]:
    """The summary of a run, one sentence per line; ``flags`` repeat --store/--config in the
    suggested commands so they read the same results."""
    lines = [_run_line(data), _metrics_line(data, k)]
    lines += [Text(w, style="yellow") for w in _warnings(verdict)]
    if (data["counts"] or {}).get("replayed"):
        lines += _cause_lines(data["causes"], judged=_judged(data, k))
    if verdict is not None:
        lines += _verdict_lines(verdict)
    lines.append(_next_line(data, verdict, store, k, flags))
    return lines


def _run_line(data: dict[str, Any]) -> Text:
    counts = data["counts"] or {}
    colour = {"complete": "green", "partial": "yellow"}.get(data["status"], "red")
    status = Text(data["status"], style=colour)
    if data.get("status_reason"):
        status.append(f" ({data['status_reason']})")
    accepted, replayed = counts.get("accepted", 0), counts.get("replayed", 0)
    parts = [f"{data['mode']}", f"{data['level']} level",
             f"{replayed} of {plural(accepted, 'query', 'queries')} replayed"]
    if data.get("sample"):
        parts.append(data["sample"]["sampled"])
    if counts.get("quarantined"):
        parts.append(f"{counts['quarantined']} log records quarantined")
    return Text.assemble(f"run {data['run_id']} ", status, " · " + " · ".join(parts))


def _metrics_line(data: dict[str, Any], k: int) -> Text:
    metrics, replayed = data["metrics"], (data["counts"] or {}).get("replayed", 0)
    shown = [m for m in (f"recall@{k}", f"ndcg@{k}") if m in metrics]
    judged = _judged(data, k)
    if not replayed:
        return Text("no query was replayed, so nothing was measured", style="red")
    if not judged:
        return Text(f"recall@{k} and nDCG@{k} not measured: none of the "
                    f"{plural(replayed, 'replayed query', 'replayed queries')} has judgments",
                    style="yellow")
    sample = data.get("sample")
    if sample:  # the stratified estimates of the whole log's means
        estimates = sample["estimates"]
        values = " · ".join(
            f"{measure_name(m)} "
            f"{estimate(estimates[m]['mean'], estimates[m]['ci_low'], estimates[m]['ci_high'])}"
            for m in shown if m in estimates)
        return Text(f"{values} (n {judged} judged; {sample['sampled']})")
    values = " · ".join(f"{measure_name(m)} {fixed(metrics[m]['mean'])}" for m in shown)
    return Text(f"{values} (n {judged} judged of {replayed})")


def _judged(data: dict[str, Any], k: int) -> int:
    """Queries with judgments (where recall@k is defined)."""
    metric = data["metrics"].get(f"recall@{k}")
    return metric["n"] if metric else 0


def _warnings(verdict: Verdict | None) -> list[str]:
    """What the verdict warns about (e.g. few judged queries, qrels matching no query)."""
    return list(verdict.warnings) if verdict is not None else []


def _cause_lines(causes: dict[str, dict[str, Any]], judged: int) -> list[Text]:
    failures = {c: v["queries"] for c, v in causes.items() if c not in (DRIFT, UNSUPPORTED)}
    none_found = (Text("no retrieval failure found", style="green") if judged else
                  Text("no retrieval failure found among the answers' evidence (no judgments)"))
    lines = [Text("why retrieval failed: " + " · ".join(
        f"{cause} {plural(n, 'query', 'queries')}" for cause, n in failures.items()))
        if failures else none_found]
    if DRIFT in causes:
        n = causes[DRIFT]["queries"]
        lines.append(Text("production served different results than the index returns today "
                          f"for {plural(n, 'query', 'queries')} (drift)"))
    if UNSUPPORTED in causes:
        n = causes[UNSUPPORTED]["queries"]
        lines.append(Text(f"{n} answer holds sentences no document supports" if n == 1 else
                          f"{n} answers hold sentences no document supports"))
    return lines


def _verdict_lines(verdict: Verdict) -> list[Text]:
    """Failed gates by name, then what could not be judged and why, else that all passed."""
    gates = verdict.gates
    failed = [g for g in gates if g.status == "failed"]
    lines = [Text(f"gate failed: {g.reason}", style="red bold") for g in failed]
    skipped = verdict.not_evaluated
    relative = [g for g in skipped if g.kind == "max_drop"]
    if relative:
        reason = verdict.baseline_reason or "no comparable baseline"
        metrics = " and ".join(dict.fromkeys(g.metric for g in relative))
        line = f"{reason}, so the regression gates on {metrics} are not evaluated"
        if verdict.require_baseline:
            line += " (require_baseline is set: that fails the run)"
        lines.append(Text(line, style="yellow"))
    lines += [Text(f"not evaluated: {g.reason}", style="yellow")
              for g in skipped if g.kind != "max_drop"]
    passed = [g for g in gates if g.status == "passed"]
    if not failed and passed:
        comparison = verdict.comparison
        against = (f", compared with {comparison.baseline_run_id} on "
                   f"{comparison.shared_queries} shared queries"
                   if comparison is not None and comparison.shared_queries else "")
        lines.append(Text(f"{plural(len(passed), 'gate')} passed{against}", style="green"))
    if not gates:
        lines.append(Text("no gates configured"))
    return lines


def _next_line(data: dict[str, Any], verdict: Verdict | None, store: Store, k: int,
               flags: str) -> Text:
    steps = [f"auditor dashboard{flags}"]
    query = worth_tracing(store, data["run_id"], verdict, k)
    if query is not None:
        steps.append(f"auditor trace {_shell_word(query)}{flags}")
    report = (verdict.reports.get("html") or next(iter(verdict.reports.values()), None)
              if verdict is not None else None)
    if report is not None:
        steps.append(f"report: {_relative(report)}")
    return Text("next: " + " · ".join(steps), style="bold")


def worth_tracing(store: Store, run_id: str, verdict: Verdict | None, k: int) -> str | None:
    """A query a person learns most from: the first regressed one, else the worst-ranked
    query with a retrieval failure cause, else one whose answer is unsupported."""
    comparison = verdict.comparison if verdict is not None else None
    if comparison is not None and comparison.regressed:
        return comparison.regressed[0].query_id
    return worst_diagnosed_query(store, run_id, f"ndcg@{k}", DRIFT, UNSUPPORTED)


def _shell_word(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
