"""The metric registry owns every stored family: each form parses and formats back, the store
holds no name it does not know, and a misspelt name is told with the closest known one."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from auditor.config import Gate
from auditor.metrics import MEASURES, Measure, metrics_for
from auditor.metrics.registry import (
    FAMILIES,
    Metric,
    MetricNameError,
    check_metric_name,
    examples,
    family_of,
    format_metric,
    headline,
    metric_name,
    parse_metric,
)
from tests.conftest import ROOT

GOLDEN_ROWS = sorted((ROOT / "tests" / "golden").glob("*-rows.json"))


@pytest.mark.parametrize("metric", list(examples((1, 5, 10, 100, 1000))), ids=str)
def test_every_form_of_every_family_round_trips(metric: Metric) -> None:
    name = format_metric(metric)
    assert parse_metric(name) == metric
    assert format_metric(parse_metric(name)) == name == str(metric)
    assert check_metric_name(f" {name.upper()} ") == name


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=lambda f: f.name)
def test_a_family_is_refused_in_a_form_it_is_not_stored_in(family) -> None:
    wrong = [f"{family.name}@10"] if not family.at_k else [f"{family.name}@0"]
    if not family.accepts(None):
        wrong.append(family.name)
    for name in wrong:
        with pytest.raises(MetricNameError, match=f"unknown metric '{name}': did you mean "
                                                  f"'{family.name}"):
            parse_metric(name)


def test_stored_metric_names_are_all_known_and_every_family_is_stored() -> None:
    """The golden rows are a real store's per-query rows from runs on both fixtures."""
    assert GOLDEN_ROWS
    stored = {row["metric"] for path in GOLDEN_ROWS
              for row in json.loads(path.read_text())["metrics"]}
    for name in stored:
        assert format_metric(parse_metric(name)) == name
    assert {family_of(name).name for name in stored} == set(FAMILIES)  # type: ignore[union-attr]


def test_the_ranking_measures_are_the_registry_s() -> None:
    assert get_args(Measure) == MEASURES
    assert [str(m) for m in metrics_for([10])] == [f"{m}@10" for m in MEASURES]


def test_headline_and_direction_as_before() -> None:
    assert headline(10) == ["recall@10", "ndcg@10", "mrr@10", "answer_coverage@10",
                            "silver_recall@10", "scatter_docs"]
    lower = {f.name for f in FAMILIES.values() if f.lower_is_better}
    assert lower == {"scatter_docs", "scatter_chunks", "effective_sources"}


def test_names_built_in_code_are_checked() -> None:
    assert metric_name("served_recall", 5) == "served_recall@5"
    assert metric_name("answer_coverage") == "answer_coverage"
    for family, k in (("served_recal", 5), ("rbo", 5), ("recall", None), ("recall", 0)):
        with pytest.raises(MetricNameError):
            metric_name(family, k)


@pytest.mark.parametrize(("given", "closest"), [
    ("recal@10", "'recall@10'"), ("NDCG@5", None), ("scater_docs", "'scatter_docs'"),
    ("rbo@10", "'rbo' (it takes no @k)"), ("ndcg@0", "'ndcg@k' with k a whole number"),
    ("answer_coverag", "'answer_coverage'"), ("served_recal@20", "'served_recall@20'"),
])
def test_a_gate_on_a_misspelt_metric_names_the_closest(given: str, closest: str | None) -> None:
    if closest is None:
        assert Gate(metric=given, min=0.5).metric == given.lower()
        return
    with pytest.raises(ValueError, match="did you mean " + closest.replace("(", r"\(")
                       .replace(")", r"\)")):
        Gate(metric=given, min=0.5)


def test_an_unknown_metric_far_from_any_lists_them_all() -> None:
    with pytest.raises(MetricNameError, match="known metrics are recall@k, precision@k"):
        parse_metric("map@10")
