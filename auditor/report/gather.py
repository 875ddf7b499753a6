"""Gathering a report: everything a report of one run shows, read once from the store into
JSON-safe data, so the four formats (one renderer each) never disagree.

Drift (production served other results than the index returns today) is kept apart from
the causes of failed retrieval, and the causes' shares leave it out.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from auditor.cases import DRIFT, SENTENCE_CLASSES
from auditor.compare import compare_runs
from auditor.metrics.registry import headline, lower_is_better
from auditor.store import Store
from auditor.store.read.run_facts import scatter_sizes
from auditor.store.read.sample import sampled_run
from auditor.verdict import Verdict, gate_row, read_verdict

if TYPE_CHECKING:
    from auditor.compare import Comparison

QUARANTINE_SHOWN = 5


def run_summary(store: Store, run_id: str) -> dict[str, Any]:
    """The machine-readable summary of a run (what ``--json`` prints)."""
    return _summary(store, store.run(run_id), store.cause_counts(run_id))


def sentence_classes(counts: dict[str, int]) -> dict[str, int]:
    """Answer sentences per class, every class in its order (0 when none), so a report
    says "contradicted 0" rather than leaving the class out."""
    return {**{status: counts.get(status, 0) for status in SENTENCE_CLASSES}, **counts}


def drift_sentence(queries: int) -> str:
    return (f"production served different results than the index returns today for "
            f"{queries} quer{'y' if queries == 1 else 'ies'} (drift)")


def split_drift(causes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Failure causes without drift, and drift on its own (queries, share, sentence)."""
    drift = next((c for c in causes if c["cause"] == DRIFT), None)
    queries = drift["queries"] if drift else 0
    return ([c for c in causes if c["cause"] != DRIFT],
            {"queries": queries, "share": drift["share"] if drift else 0.0,
             "sentence": drift_sentence(queries) if queries else None})


def _summary(store: Store, run_row: dict[str, Any], causes: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """``causes`` holds every stored cause, drift included under its name (the CLI lists it
    apart); ``drift`` says it in words. Reports show only failure causes."""
    drift = split_drift(causes)[1]
    summary = {
        "run_id": run_row["run_id"],
        "status": run_row["status"],
        "status_reason": run_row["status_reason"],
        "store": str(store.path),
        "backend": run_row["backend"],
        "mode": run_row["mode"],
        "level": run_row["level"],
        "counts": run_row["counts"],
        "metrics": {
            row["metric"]: {"mean": row["mean"], "n": row["n"], "undefined": row["undefined"]}
            for row in store.metric_means(run_row["run_id"])
        },
        "causes": {row["cause"]: {"queries": row["queries"], "share": row["share"]}
                   for row in causes},
        "drift": drift,
        "sentences": sentence_classes(store.sentence_counts(run_row["run_id"])),
        "corpus": (run_row["counts"] or {}).get("corpus", {}),
    }
    sampled = sampled_run(store, run_row["run_id"], run_row.get("manifest"))
    if sampled is not None:  # a run over the whole log has no such key
        summary["sample"] = sampled.as_json()
    return summary



@dataclass(frozen=True)
class Report:
    """Everything a report of one run shows: the verdict as the typed read model, and the
    rest already JSON-safe (timestamps as text, NaN as None), as every renderer reads it."""

    generated_at: datetime
    verdict: Verdict
    summary: dict[str, Any]
    run: dict[str, Any]  # started_at, finished_at, code_version, fingerprint
    manifest: dict[str, Any] | None
    headline: list[dict[str, Any]]
    new_causes: list[dict[str, Any]]  # {"cause", "queries", "query_ids"}, drift left out
    trend: list[dict[str, Any]]
    causes: list[dict[str, Any]]
    scatter: dict[str, Any]
    quarantine: dict[str, Any]  # {"count", "entries"}
    gaps: dict[str, Any] | None = None  # {"chunks", "note", "clusters"}; None: not looked for
    files: dict[str, str] | None = None  # format -> path, when written to files

    @property
    def run_id(self) -> str:
        return self.verdict.run_id

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` output (keys in the order it always had)."""
        verdict, comparison = self.verdict, self.verdict.comparison
        data = {
            "generated_at": self.generated_at,
            "run_id": self.run_id,
            "summary": self.summary,
            "run": self.run,
            "manifest": self.manifest,
            "baseline_run_id": verdict.baseline_run_id,
            "gate_status": verdict.gate_status,
            "gates": [gate_row(g) for g in verdict.gates],
            "verdict": verdict.history_json(),
            "headline": self.headline,
            "comparison": None if comparison is None else {
                **comparison.to_dict(), "new_causes_by_cause": self.new_causes},
            "trend": self.trend,
            "causes": self.causes,
            "scatter": self.scatter,
            "quarantine": self.quarantine,
            "gaps": self.gaps,
        }
        if self.files is not None:
            data["files"] = self.files
        return jsonable(data)


def build_report(store: Store, run_id: str, *, comparison: Comparison | None = None,
                 limit: int = 20, trend_runs: int = 30) -> Report:
    """Everything a report of ``run_id`` shows, read once.

    ``comparison`` is the one the verdict computed; without it, a run that has a baseline is
    compared again on the metrics its gates tested."""
    row = store.run(run_id)
    config = row["config"] or {}
    every_cause = store.cause_counts(run_id)
    causes = split_drift(every_cause)[0]
    summary = jsonable(_summary(store, row, every_cause))
    baseline = row.get("baseline_run_id")
    if comparison is None and baseline:
        tested = [r["metric"] for r in store.comparison_rows(run_id)] or None
        comparison = compare_runs(store, baseline, run_id, metrics=tested,
                                  k=config.get("diagnose_k", 10), limit=limit)
    verdict = read_verdict(store, run_id, run=row, comparison=comparison)
    names = _headline(summary["metrics"], config, verdict)
    quarantine = store.quarantine(run_id)
    return Report(
        generated_at=datetime.now(UTC),
        verdict=verdict,
        summary=summary,
        run=jsonable({key: row[key] for key in ("started_at", "finished_at", "code_version",
                                                "fingerprint")}),
        manifest=jsonable(row.get("manifest")),
        headline=jsonable(_headline_rows(summary["metrics"], names, comparison,
                                         summary.get("sample"))),
        new_causes=jsonable(_new_causes(comparison)) if comparison else [],
        trend=jsonable(_trend(store, row, names, trend_runs)),
        causes=jsonable(_causes(causes, comparison)),
        scatter=jsonable(_scatter(store, run_id, summary["metrics"], config)),
        quarantine=jsonable({"count": len(quarantine),
                             "entries": quarantine[:QUARANTINE_SHOWN]}),
        gaps=jsonable(_gaps(store, run_id, limit)),
    )


def _gaps(store: Store, run_id: str, limit: int) -> dict[str, Any] | None:
    """The run's topics, gaps first (at most ``limit``), or why there are none."""
    found = store.gap_run(run_id)
    if found is None:
        return None
    clusters = store.gaps(run_id)
    return {"topics": len(clusters), "chunks": found["chunks"], "note": found["not_evaluated"],
            "clusters": clusters[:limit]}


def _new_causes(comparison: Comparison) -> list[dict[str, Any]]:
    """Queries per new cause (over all new pairs, drift left out) and the ids of the listed
    ones."""
    ids: dict[str, list[str]] = {}
    for change in comparison.new_causes:
        group = ids.setdefault(change.cause, [])
        if change.query_id not in group:
            group.append(change.query_id)
    return [{"cause": c["cause"], "queries": c["queries"], "query_ids": ids.get(c["cause"], [])}
            for c in comparison.new_cause_counts if c["cause"] != DRIFT]


def _headline(metrics: dict[str, Any], config: dict[str, Any], verdict: Verdict) -> list[str]:
    """The metrics a reader looks at first: the ones the comparison tested (or, without one,
    the default tested ones at ``diagnose_k``) and the gated ones."""
    if verdict.comparison is not None:
        names = [m.metric for m in verdict.comparison.metrics]
    else:
        names = headline(config.get("diagnose_k", 10))
    names += [g.metric for g in verdict.gates]
    return [name for name in dict.fromkeys(names) if name in metrics]


def _headline_rows(metrics: dict[str, Any], names: list[str], comparison: Comparison | None,
                   sample: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    deltas = {m.metric: m for m in comparison.metrics} if comparison else {}
    rows = []
    for name in names:
        delta = deltas.get(name)
        rows.append({"metric": name, "mean": metrics[name]["mean"], "n": metrics[name]["n"],
                     **{key: getattr(delta, key, None) for key in
                        ("delta", "ci_low", "ci_high", "p_holm", "baseline_mean")},
                     "lower_is_better": lower_is_better(name),
                     **_sampled_mean(sample, name)})
    return rows


def _sampled_mean(sample: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """A sampled run's headline is the stratified estimate, with its 95% CI and ``sampled:
    n of N``; a run over the whole log adds nothing."""
    if sample is None or name not in sample["estimates"]:
        return {}
    estimate = sample["estimates"][name]
    return {"mean": estimate["mean"], "sample_ci_low": estimate["ci_low"],
            "sample_ci_high": estimate["ci_high"], "sampled": sample["sampled"]}


def _trend(store: Store, row: dict[str, Any], names: list[str], runs: int
           ) -> list[dict[str, Any]]:
    """The metrics over the newest ``runs`` runs like this one (same backend, mode and
    level), up to this one: never a newer run, nor another backend's."""
    key = (row["backend"], row["mode"], row["level"])
    every = store.runs()  # newest first
    like = [r for r in every if (r["backend"], r["mode"], r["level"]) == key
            and r["started_at"] <= row["started_at"]][:runs]
    if not like:
        return []
    oldest = like[-1]["started_at"]
    wanted = {r["run_id"] for r in like}
    newer = sum(r["started_at"] >= oldest for r in every)  # store.trend reads the newest runs
    return [t for t in store.trend(names, limit=newer) if t["run_id"] in wanted]


def _causes(causes: list[dict[str, Any]], comparison: Comparison | None
            ) -> list[dict[str, Any]]:
    """Queries per cause: with a baseline, both runs' counts on the queries both answered
    (like with like); otherwise this run's, over its replayed queries."""
    if not comparison:
        return [{**c, "baseline": None, "baseline_share": None} for c in causes]
    shared = max(comparison.shared_queries, 1)
    return [{"cause": c["cause"], "queries": c["current"], "share": c["current"] / shared,
             "baseline": c["baseline"], "baseline_share": c["baseline"] / shared}
            for c in comparison.cause_counts if c["cause"] != DRIFT]


def _scatter(store: Store, run_id: str, metrics: dict[str, Any], config: dict[str, Any]
             ) -> dict[str, Any]:
    """How many documents each answer needs (doc-level set cover) and gatherable@k."""
    sizes = [(s.size, s.queries, s.approx) for s in scatter_sizes(store, run_id)]
    limit = config.get("scatter_limit", 3)
    gatherable = sorted(((int(name.split("@")[1]), value["mean"]) for name, value in
                         metrics.items() if name.startswith("gatherable@")))
    return {
        "limit": limit,
        "sizes": [{"size": s, "queries": q, "approx": a} for s, q, a in sizes],
        "scattered": sum(q for s, q, _ in sizes if s is not None and s > limit),
        "gatherable": [{"k": k, "mean": mean} for k, mean in gatherable],
    }


def jsonable(value: Any) -> Any:
    """Plain JSON types only: timestamps as ISO text, NaN and infinities as null."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)

