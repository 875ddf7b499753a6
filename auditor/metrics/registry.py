"""Every metric family the auditor stores, in one table: the single owner of its facts.

A family is a name (``recall``) that is stored with a cut-off (``recall@10``), without one
(``rbo``), or both (``answer_coverage`` and ``answer_coverage@10``). Whether its values lie
in [0, 1], which direction is better, whether a comparison tests it by default, and its
README glossary line are read from here by the gates, the comparison, the dashboard, the
per-query tables and the docs test: adding a family is one row.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower"]


class MetricNameError(ValueError):
    """A metric name that does not parse, e.g. ``recal@10`` or ``ndcg@0``."""


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family and the facts every consumer reads."""

    name: str
    glossary: str  # README line of ``name@k`` (of ``name`` when the family takes no k)
    at_k: bool = True  # stored as ``name@k``
    plain: str | None = None  # README line of ``name`` when stored both with and without k
    bounded: bool = True  # values lie in [0, 1]: charts fix their axis there
    direction: Direction = "higher"  # which way is better (gates and deltas read it)
    headline: int | None = None  # place among the metrics a comparison tests by default
    ranking: bool = False  # a trec_eval measure computed by ``ranking.evaluate``

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    def accepts(self, k: int | None) -> bool:
        """Whether ``k`` (``None``: no cut-off) is a form this family is stored in."""
        return self.at_k if k is not None else (not self.at_k or self.plain is not None)

    def forms(self) -> dict[str, str]:
        """Each stored form as the README writes it (``recall@k``) → its glossary line."""
        out = {f"{self.name}@k": self.glossary} if self.at_k else {self.name: self.glossary}
        if self.plain is not None:
            out = {self.name: self.plain, **out}
        return out


FAMILIES: dict[str, Family] = {f.name: f for f in (
    # ranking against judgments, as trec_eval (this order is the order they are stored in)
    Family("recall", "relevant items in the top k / all relevant items",
           headline=1, ranking=True),
    Family("precision", "relevant items in the top k / k (k even when fewer hits came back)",
           ranking=True),
    Family("hit", "1 if any relevant item is in the top k, else 0 (trec_eval `success`)",
           ranking=True),
    Family("mrr", "1 / rank of the first relevant item if it is within k, else 0",
           headline=3, ranking=True),
    Family("ndcg", "DCG@k / ideal DCG@k; gain = relevance grade, discount log2(rank + 1), "
                   "ideal ranking from all judgments (trec_eval `ndcg_cut`)",
           headline=2, ranking=True),
    Family("judged", "judged items (any grade) in the top k / min(k, hits returned); null "
                     "when nothing came back", ranking=True),
    Family("complete", "1 if every relevant item is in the top k, else 0", ranking=True),
    # answers traced to their sources
    Family("answer_coverage", "share of answer sentences supported by a chunk of the "
                              "replayed top k",
           plain="share of answer sentences supported by the chunks production served; null "
                 "without a served list", headline=4),
    Family("index_coverage", "share of answer sentences supported by some chunk anywhere in "
                             "the index (or adjacent chunks joined)", at_k=False),
    Family("silver_recall", "recall@k against the *evidence set* (the best-supporting "
                            "document of each supported sentence): silver labels, always "
                            "named so, available without judgments", headline=5),
    Family("scatter_docs", "least number of documents whose chunks together support every "
                           "supportable sentence (exact set cover for small answers, greedy "
                           "with an `approx` flag beyond 200,000 combinations)",
           at_k=False, bounded=False, direction="lower", headline=6),
    Family("scatter_chunks", "the same in chunks", at_k=False, bounded=False,
           direction="lower"),
    # a property of the judged query, not of retrieval: no run moves it
    Family("scatter_judged", "with judgments: the number of relevant documents the query "
                             "needs", at_k=False, bounded=False),
    Family("gatherable", "1 if `scatter_chunks` ≤ k: the whole answer could fit in k "
                         "retrieved chunks"),
    Family("effective_sources", "exp(entropy) of the shares of sentences whose best support "
                                "is each document", at_k=False, bounded=False,
           direction="lower"),
    # what production served against what replay returns now
    Family("overlap", "size of (top-k served ∩ top-k replayed) / the larger of the two: drift "
                      "between what was logged and what replay returns now"),
    Family("rbo", "rank-biased overlap (p = 0.9, extrapolated) of the served and replayed "
                  "lists", at_k=False),
    Family("served_recall", "recall@k of the list production served (with judgments)"),
    Family("recall_delta", "replayed recall@k minus served recall@k", bounded=False),
)}

_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:@(?P<k>[1-9][0-9]*))?$")
_K = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Metric:
    """One family at one cut-off (``k`` is ``None`` for a family stored without one).

    Built only in forms the registry knows, so a name formatted from it is always stored.
    """

    measure: str
    k: int | None = None

    def __post_init__(self) -> None:
        family = FAMILIES.get(self.measure)
        if family is None or not family.accepts(self.k) or (self.k is not None and self.k < 1):
            raise MetricNameError(_unknown(f"{self.measure}@{self.k}" if self.k is not None
                                           else self.measure))

    @property
    def family(self) -> Family:
        return FAMILIES[self.measure]

    def __str__(self) -> str:
        return format_metric(self)


def parse_metric(name: str) -> Metric:
    """``"recall@10"`` → ``Metric("recall", 10)``; the inverse of :func:`format_metric`."""
    match = _NAME.match(name.strip().lower())
    family = FAMILIES.get(match["family"]) if match else None
    k = int(match["k"]) if match and match["k"] else None
    if match is None or family is None or not family.accepts(k):
        raise MetricNameError(_unknown(name))
    return Metric(family.name, k)


def format_metric(metric: Metric) -> str:
    return metric.measure if metric.k is None else f"{metric.measure}@{metric.k}"


def metric_name(family: str, k: int | None = None) -> str:
    """The stored name of ``family`` at ``k``, checked against the registry."""
    return format_metric(Metric(family, k))


def check_metric_name(name: str) -> str:
    """``name`` as stored (trimmed, lower case), or a sentence naming the closest metric."""
    return format_metric(parse_metric(name))


def family_of(name: str) -> Family | None:
    """The family of a stored metric name; ``None`` for a name outside the registry."""
    return FAMILIES.get(name.partition("@")[0])


def lower_is_better(name: str) -> bool:
    family = family_of(name)
    return family is not None and family.lower_is_better


def bounded(name: str) -> bool:
    family = family_of(name)
    return family is not None and family.bounded


def headline(k: int) -> list[str]:
    """What a comparison tests by default, at ``k`` (Holm corrects across these)."""
    chosen = sorted((f for f in FAMILIES.values() if f.headline is not None),
                    key=lambda f: f.headline or 0)
    return [metric_name(f.name, k if f.at_k else None) for f in chosen]


def ranking_measures() -> tuple[str, ...]:
    """The trec_eval measures, in the order they are computed and stored."""
    return tuple(f.name for f in FAMILIES.values() if f.ranking)


def glossary() -> dict[str, str]:
    """Every stored form as the README glossary writes it (``recall@k``) → its line."""
    return {form: line for family in FAMILIES.values() for form, line in family.forms().items()}


def examples(ks: tuple[int, ...] = (1, 10)) -> Iterator[Metric]:
    """Every stored form of every family, at each of ``ks`` where a cut-off applies."""
    for family in FAMILIES.values():
        if family.accepts(None):
            yield Metric(family.name)
        if family.at_k:
            yield from (Metric(family.name, k) for k in ks)


def _unknown(name: str) -> str:
    """One sentence: the name is unknown, and the closest known metric (difflib)."""
    stem, _, cut = name.strip().lower().partition("@")
    close = difflib.get_close_matches(stem, list(FAMILIES), n=1, cutoff=0.6)
    if not close:
        return f"unknown metric {name!r}: known metrics are {', '.join(glossary())}"
    family = FAMILIES[close[0]]
    if family.at_k and _K.fullmatch(cut):
        return f"unknown metric {name!r}: did you mean '{family.name}@{cut}'?"
    if family.accepts(None) and not (cut and family.at_k):
        takes = " (it takes no @k)" if cut else ""
        return f"unknown metric {name!r}: did you mean {family.name!r}{takes}?"
    return (f"unknown metric {name!r}: did you mean '{family.name}@k' with k a whole number "
            "of 1 or more?")
