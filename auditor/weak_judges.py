"""Weak judges measured against people: how far an automatic label source (``silver``,
``cited``, ``llm:<model>``) can stand in for human judgments.

Two numbers per source, both against the *people's* effective grades (human and imported
labels of one list version):

- **Cohen's κ** over the pairs both judged: on relevant / not relevant (grade ≥ 1), and
  linearly weighted on the grades themselves.
- **Kendall's τ** (τ-b, ``scipy.stats.kendalltau``) between the *system rankings* the two
  label sets induce: every stored run's mean ``metric`` (nDCG@10 by default) is computed
  from its stored hits under the people's labels and under the source's, and the runs
  ordered by each (only runs at the labels' level: a document label says nothing about a
  chunk ranking's ids). This is the question that matters for an audit (would the weak judge
  rank the systems the same way?), and what Voorhees's and later LLM-judge studies report.
  Runs where either mean is undefined are left out; fewer than two runs, or a ranking
  with no order (every run tied), leave τ not evaluated, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from auditor.agreement import cohen_kappa
from auditor.errors import InputError
from auditor.judging import AUTOMATIC, Pair, Selection, effective, kind, resolve
from auditor.metrics.registry import Metric, format_metric, parse_metric
from auditor.rescore import measure
from auditor.store import Store
from auditor.store.judgment_lists import RunRanking


@dataclass(frozen=True)
class RunScore:
    """One stored run's mean metric under the people's labels and under the source's."""

    run_id: str
    mode: str
    people: float | None
    weak: float | None


@dataclass(frozen=True)
class WeakJudge:
    source: str  # cited, silver, llm:<model>
    judgments: str  # the list version its labels came from
    pairs: int  # pairs it labels
    overlap: int  # of them, pairs the people judged too
    kappa: float | None  # relevant (grade >= 1) or not
    kappa_linear: float | None  # on the grades, weighted by |a - b|
    runs: list[RunScore]
    tau: float | None
    p_value: float | None
    ranked_runs: int  # runs where both means are defined (what τ is over)
    reason: str | None  # why τ is not evaluated


@dataclass(frozen=True)
class WeakReport:
    people: str  # NAME@VERSION
    people_sources: tuple[str, ...]
    metric: str
    level: str  # the labels' level (chunk when any label names a chunk): runs at it only
    judges: list[WeakJudge]


def weak_judges(store: Store, people_spec: str, weak_specs: tuple[str, ...] = (),
                metric: str = "ndcg@10") -> WeakReport:
    """Every automatic source of ``people_spec`` and of ``weak_specs`` against the people's
    labels of ``people_spec`` (see the module docstring)."""
    measured = parse_metric(metric)
    people_version = resolve(store, people_spec)
    labels = store.list_labels(people_version.name, people_version.version)
    people_sources = tuple(sorted({s for s in labels.column("source").to_pylist()
                                   if kind(s) not in AUTOMATIC}))
    if not people_sources:
        raise InputError(f"judgment list {people_version.spec} holds no human or imported "
                         "label: name the list people judged (`auditor judgments list`)")
    people = effective(labels, Selection(",".join(people_sources)))
    weak: list[tuple[str, str, list[Pair]]] = []
    for version in [people_version, *(resolve(store, spec) for spec in weak_specs)]:
        held = store.list_labels(version.name, version.version)
        for source in sorted({s for s in held.column("source").to_pylist()
                              if kind(s) in AUTOMATIC}):
            weak.append((source, version.spec, effective(held, Selection(source))))
    if not weak:
        raise InputError(f"no automatic label source (silver, cited, llm:<model>) in "
                         f"{', '.join([people_spec, *weak_specs])}: make one with "
                         "`auditor judgments cited RUN_ID` and pass it with --weak")
    level = "chunk" if labels.column("chunk_id").null_count < labels.num_rows else "doc"
    rankings = _rankings(store, level)
    name = format_metric(measured)
    people_means = {run_id: _mean(measure(ranking, people, [measured])[name])
                    for run_id, (_, ranking) in rankings.items()}
    judges = [_judge(source, spec, pairs, people, rankings, people_means, measured, name)
              for source, spec, pairs in weak]
    return WeakReport(people_version.spec, people_sources, name, level, judges)


def _rankings(store: Store, level: str) -> dict[str, tuple[str, RunRanking]]:
    """Every stored run at ``level`` (oldest first) with its mode and stored ranking."""
    return {run["run_id"]: (run["mode"], store.run_ranking(run["run_id"]))
            for run in reversed(store.runs()) if run["level"] == level}


def _judge(source: str, spec: str, pairs: list[Pair], people: list[Pair],
           rankings: dict[str, tuple[str, RunRanking]], people_means: dict[str, float | None],
           measured: Metric, name: str) -> WeakJudge:
    graded = {(p.query_id, p.doc_id): p.grade for p in people}
    both = [(graded[(p.query_id, p.doc_id)], p.grade) for p in pairs
            if (p.query_id, p.doc_id) in graded]
    first, second = [a for a, _ in both], [b for _, b in both]
    runs = [RunScore(run_id, mode, people_means[run_id],
                     _mean(measure(ranking, pairs, [measured])[name]))
            for run_id, (mode, ranking) in rankings.items()]
    tau, p_value, ranked, reason = kendall(runs)
    return WeakJudge(source, spec, len(pairs), len(both),
                     cohen_kappa([int(a >= 1) for a in first], [int(b >= 1) for b in second]),
                     cohen_kappa(first, second, "linear"), runs, tau, p_value, ranked, reason)


def kendall(runs: list[RunScore]) -> tuple[float | None, float | None, int, str | None]:
    """Kendall's τ-b between the people's and the source's means over the runs where both
    are defined: (τ, p, runs, reason it is not evaluated)."""
    from scipy.stats import kendalltau

    both = [(r.people, r.weak) for r in runs if r.people is not None and r.weak is not None]
    if len(both) < 2:
        return None, None, len(both), (f"{len(both)} run(s) with both means defined; "
                                       "τ needs two or more")
    people, weak = zip(*both, strict=True)
    if len(set(people)) < 2 or len(set(weak)) < 2:
        return None, None, len(both), "every run is tied under one of the label sets"
    result = kendalltau(people, weak)
    tau, p_value = float(result.statistic), float(result.pvalue)
    if math.isnan(tau):
        return None, None, len(both), "τ is undefined for these means"
    return tau, (None if math.isnan(p_value) else p_value), len(both), None


def _mean(values: np.ndarray) -> float | None:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else None
