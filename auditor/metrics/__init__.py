"""Every number the auditor reports, one module per family:

- ``ranking``: recall, precision, hit, MRR, nDCG, judged, complete at k (as trec_eval);
- ``drift``: overlap@k and rank-biased overlap between served and replayed lists;
- ``scatter``: how many documents/chunks an answer's support is spread over.
"""

from auditor.metrics.ranking import (
    MEASURES,
    Mean,
    Measure,
    Metric,
    MetricNameError,
    Qrels,
    evaluate,
    format_metric,
    means,
    metrics_for,
    parse_metric,
)

__all__ = [
    "MEASURES",
    "Mean",
    "Measure",
    "Metric",
    "MetricNameError",
    "Qrels",
    "evaluate",
    "format_metric",
    "means",
    "metrics_for",
    "parse_metric",
]
