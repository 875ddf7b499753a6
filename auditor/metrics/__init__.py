"""Every number the auditor reports, one module per family:

- ``registry``: every stored metric family and its facts (names, bounds, direction, glossary);
- ``per_query``: one replayed batch → the per-query rows the store appends;
- ``ranking``: recall, precision, hit, MRR, nDCG, judged, complete at k (as trec_eval);
- ``drift``: overlap@k and rank-biased overlap between served and replayed lists;
- ``scatter``: how many documents/chunks an answer's support is spread over.
"""

from auditor.metrics.ranking import MEASURES, Mean, Measure, Qrels, evaluate, means, metrics_for
from auditor.metrics.registry import (
    FAMILIES,
    Family,
    Metric,
    MetricNameError,
    check_metric_name,
    format_metric,
    metric_name,
    parse_metric,
)

__all__ = [
    "FAMILIES",
    "MEASURES",
    "Family",
    "Mean",
    "Measure",
    "Metric",
    "MetricNameError",
    "Qrels",
    "check_metric_name",
    "evaluate",
    "format_metric",
    "means",
    "metric_name",
    "metrics_for",
    "parse_metric",
]
