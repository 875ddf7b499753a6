"""Re-scoring a stored run against another judgment list version, without replaying.

The run's stored hits (at its level, in rank order) go through the same metric kernel as
the run itself (:func:`auditor.metrics.evaluate`), for the run's k. The result is stored
as a *rescoring* of the run (``rescorings`` + ``rescore_metrics``), not as a new run: the
run's own rows, metrics and verdicts stay what they were, and every rescoring names the
list version and the label selection it used. Judgments the run read inline from its log
(``relevant``) are not part of a list, so a rescoring does not see them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.judging import Pair, Selection, effective, resolve
from auditor.metrics import Qrels, evaluate, metrics_for
from auditor.metrics.registry import Metric, format_metric
from auditor.store import Store, StoreError
from auditor.store.judgment_lists import RunRanking


@dataclass(frozen=True)
class MetricChange:
    """One ranking metric: the run's stored mean and the mean under the other list."""

    metric: str
    stored: float | None
    stored_n: int
    rescored: float | None
    rescored_n: int

    @property
    def delta(self) -> float | None:
        if self.stored is None or self.rescored is None:
            return None
        change = self.rescored - self.stored
        return 0.0 if abs(change) < 1e-12 else change  # float noise is not a change


@dataclass(frozen=True)
class Rescored:
    run_id: str
    rescore_id: int
    judgments: str  # NAME@VERSION
    selection: dict[str, str]
    queries: int  # answered queries of the run
    judged_queries: int  # of them, those the list judges
    metrics: list[MetricChange]


def rescore(store: Store, run_id: str, spec: str, selection: Selection | None = None
            ) -> Rescored:
    """Measure ``run_id``'s stored hits against list ``spec`` and store the rescoring."""
    selection = selection or Selection()
    version = resolve(store, spec)
    if store.hits_pruned(run_id):  # zeros from missing hits would read as a regression
        raise StoreError(f"run {run_id}'s hits were pruned (`auditor prune`): a rescoring "
                          "needs its ranked lists; rescore a run within --keep-hits-days")
    ranking = store.run_ranking(run_id)
    pairs = effective(store.list_labels(version.name, version.version), selection)
    metrics = metrics_for(ranking.k)
    values = measure(ranking, pairs, metrics)
    names = [format_metric(metric) for metric in metrics]
    query_ids = ranking.queries.column("query_id").to_pylist()
    table = pa.table({
        "query_id": [q for _ in names for q in query_ids],
        "metric": [name for name in names for _ in query_ids],
        "value": pa.array([_finite(v) for name in names for v in values[name]],
                          pa.float64()),
    })
    rescore_id = store.record_rescoring(run_id, version.name, version.version,
                                        selection.as_dict(), table)
    stored = {row["metric"]: row for row in store.metric_means(run_id)}
    changes = []
    for name in names:
        defined = values[name][~np.isnan(values[name])]
        before = stored.get(name, {})
        changes.append(MetricChange(name, before.get("mean"), int(before.get("n") or 0),
                                    float(defined.mean()) if len(defined) else None,
                                    len(defined)))
    judged = {pair.query_id for pair in pairs}
    return Rescored(run_id, rescore_id, version.spec, selection.as_dict(), len(query_ids),
                    sum(1 for q in query_ids if q in judged), changes)


def measure(ranking: RunRanking, pairs: list[Pair], metrics: list[Metric]
            ) -> dict[str, np.ndarray]:
    """Per-query values (in ``ranking.queries`` order; NaN where undefined) of ``metrics``
    for a stored ranking judged by ``pairs``' effective grades, nothing stored."""
    by_query: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for pair in pairs:
        by_query[pair.query_id].append((pair.doc_id, pair.grade))
    seqs = ranking.queries.column("seq").to_pylist()
    query_ids = ranking.queries.column("query_id").to_pylist()
    keys = [str(seq) for seq in seqs]  # a query id may repeat in a log; its seq does not
    qrels = Qrels.from_rows([(key, doc, grade) for key, query_id in zip(keys, query_ids,
                                                                          strict=True)
                             for doc, grade in by_query.get(query_id, ())])
    return evaluate(keys, pc.cast(ranking.hits.column("seq"), pa.string()).combine_chunks(),
                    ranking.hits.column("id").combine_chunks(), qrels, metrics)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
