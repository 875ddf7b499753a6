"""The design-based estimates of a sampled run: every per-query metric's stratified mean with
finite-population correction and a 95% interval, from the stored per-query rows and the strata
sizes the run's manifest recorded (``manifest.sample``).

Each stored query's stratum is read back from what the store kept of its log record
(``logged_at`` and ``metadata``), by the same rule the sample was drawn with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.metrics.registry import bounded
from auditor.sampling import Estimate, estimate_mean, stratum_of
from auditor.store.connection import Connection


@dataclass(frozen=True)
class PairedChange:
    """The change (current - baseline) of each metric over the queries both runs hold, as a
    design-based estimate of the whole log's change under the sampled run's design."""

    sampled: str  # the sampled run's "sampled: n of N"
    run_id: str  # whose design (the current run's when both are sampled)
    shared: int
    estimates: dict[str, Estimate]


@dataclass(frozen=True)
class SampledRun:
    """What a run's manifest says of its sample, and the estimate of each metric."""

    n: int
    population: int
    seed: int
    stratify_by: str | None
    strata: dict[str, tuple[int, int]]  # stratum -> (N_h, n_h), as the estimator takes them
    estimates: dict[str, Estimate]

    def describe(self) -> str:
        """The words shown wherever a sampled number appears."""
        return f"sampled: {self.n} of {self.population}"

    def as_json(self) -> dict[str, Any]:
        return {
            "sampled": self.describe(), "n": self.n, "N": self.population, "seed": self.seed,
            "stratify_by": self.stratify_by,
            "strata": {name: [drawn, size] for name, (size, drawn) in self.strata.items()},
            "estimates": {metric: {"mean": e.mean, "ci_low": e.low, "ci_high": e.high,
                                   "n": e.n, "N": e.population}
                          for metric, e in self.estimates.items()},
        }


def sample_of(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest's ``sample`` entry, or None for a run over the whole log."""
    return (manifest or {}).get("sample") or None


def sampled_run(store: Connection, run_id: str, manifest: dict[str, Any] | None,
                metrics: list[str] | None = None) -> SampledRun | None:
    """The estimates of ``metrics`` (default: every stored metric) for a sampled run; None
    when the run audited the whole log."""
    entry = sample_of(manifest)
    if entry is None:
        return None
    strata = {name: (int(size), int(drawn)) for name, (drawn, size) in entry["strata"].items()}
    labels, columns = _per_query(store, run_id, entry.get("stratify_by"), metrics)
    estimates = {metric: _clipped(metric, estimate_mean(values, labels, strata), 0.0)
                 for metric, values in columns.items()}
    return SampledRun(n=int(entry["n"]), population=int(entry["N"]), seed=int(entry["seed"]),
                      stratify_by=entry.get("stratify_by"), strata=strata,
                      estimates=estimates)


def _clipped(metric: str, estimate: Estimate, lowest: float) -> Estimate:
    """A bounded metric's interval kept inside its range: [0, 1] for a mean, [-1, 1] for a
    change (an interval reaching past 1 says nothing a reader or a gate can use)."""
    return estimate.within(lowest, 1.0) if bounded(metric) else estimate


def query_strata(store: Connection, run_id: str, stratify_by: str | None) -> dict[str, str]:
    """Each stored query's stratum (query id -> label)."""
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT query_id, logged_at, metadata FROM query_results "
                           "WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
    return {query_id: stratum_of(at, json.loads(meta) if meta else None, stratify_by)
            for query_id, at, meta in rows}


def _per_query(store: Connection, run_id: str, stratify_by: str | None,
               metrics: list[str] | None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Stratum labels in stored order, and each metric's value per query (NaN: undefined).
    Arrow columns, not a Python tuple per stored value: a sample of a few thousand queries
    holds some 50 values each, and reading them one by one cost as much as auditing them."""
    strata = query_strata(store, run_id, stratify_by)
    with store.connect(read_only=True) as con:
        rows = con.sql(
            "SELECT metric, query_id, value FROM metrics WHERE run_id = $1 "
            "AND ($2 IS NULL OR list_contains($2, metric))", params=[run_id, metrics],
        ).to_arrow_table()
    where = pc.index_in(rows["query_id"], value_set=pa.array(list(strata), pa.string()))
    at = where.fill_null(-1).to_numpy()
    values = rows["value"].cast(pa.float64()).to_numpy(zero_copy_only=False)  # null: NaN
    names = rows["metric"].combine_chunks().dictionary_encode()
    codes = names.indices.to_numpy(zero_copy_only=False)
    columns: dict[str, np.ndarray] = {}
    for code, metric in enumerate(names.dictionary.to_pylist()):
        mine = (codes == code) & (at >= 0)
        column = columns[metric] = np.full(len(strata), np.nan)
        column[at[mine]] = values[mine]
    return list(strata.values()), columns


def paired_change(store: Connection, baseline_run_id: str, run_id: str,
                  manifests: tuple[dict[str, Any] | None, dict[str, Any] | None],
                  metrics: list[str]) -> PairedChange | None:
    """The stratified estimate of each metric's change on the shared queries, when either
    run is sampled (None when neither is). The strata are the sampled run's (the current
    one's if both are): N_h from its manifest, n_h the shared queries in stratum h."""
    designs = [(rid, sample_of(m)) for rid, m in zip((run_id, baseline_run_id),
                                                      manifests[::-1], strict=True)]
    owner, entry = next(((rid, e) for rid, e in designs if e is not None), (None, None))
    if owner is None or entry is None:
        return None
    strata_of = query_strata(store, owner, entry.get("stratify_by"))
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT b.metric, b.query_id, b.value - a.value FROM metrics a JOIN metrics b "
            "ON a.query_id = b.query_id AND a.metric = b.metric "
            "WHERE a.run_id = ? AND b.run_id = ? AND list_contains(?, b.metric)",
            [baseline_run_id, run_id, metrics]).fetchall()
        shared_ids = [r[0] for r in con.execute(
            "SELECT query_id FROM query_results WHERE run_id = ? INTERSECT "
            "SELECT query_id FROM query_results WHERE run_id = ? ORDER BY 1",
            [baseline_run_id, run_id]).fetchall()]
    shared = [q for q in shared_ids if q in strata_of]
    position = {q: i for i, q in enumerate(shared)}
    labels = [strata_of[q] for q in shared]
    sizes = {name: int(size) for name, (_, size) in entry["strata"].items()}
    strata = {name: (size, labels.count(name)) for name, size in sizes.items()}
    columns = {metric: np.full(len(shared), np.nan) for metric in metrics}
    for metric, query_id, diff in rows:
        if query_id in position and diff is not None:
            columns[metric][position[query_id]] = diff
    estimates = {metric: _clipped(metric, estimate_mean(values, labels, strata), -1.0)
                 for metric, values in columns.items()}
    return PairedChange(sampled=f"sampled: {entry['n']} of {entry['N']}", run_id=owner,
                        shared=len(shared), estimates=estimates)
