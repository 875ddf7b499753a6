"""What a diagnosis is about: the causes, the thresholds, one query's case as the rules see
it (``auditor.diagnose`` holds the rules) and its rankings at the case's level.

Vocabulary. A *target* is an id that should be retrieved (judged relevant, else silver
evidence), compared at the case's level: at ``doc`` level a ranked chunk list collapses to
documents by first occurrence. A target is *missed* when it is in the index but not in the
replayed top-``k``; a sentence is *uncovered* when some chunk of the index supports it but
no replayed chunk within rank ``k`` does. Ranks are 1-based; a rank outside the searched
depth is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Literal, get_args

from auditor.config import AuditSettings
from auditor.records import Hit, Level, hit_field

Cause = Literal[
    "not_indexed",
    "ranked_below_k",
    "not_retrieved",
    "vocabulary_mismatch",
    "semantic_miss",
    "ann_loss",
    "fusion_loss",
    "filtered_out",
    "scattered",
    "chunk_split",
    "crowded_out",
    "unsupported_answer",
    "conflicting_evidence",
    "drifted",
    "empty_result",
    "slow",
]
CAUSES: tuple[Cause, ...] = get_args(Cause)
# Production served other results than the index returns today: a difference, not a failure.
DRIFT: Cause = "drifted"
ANN_MODES = ("dense", "hybrid", "template")  # runs whose ranking uses approximate kNN
EMPTY_CAUSES: tuple[Cause, ...] = ("not_indexed", "empty_result")  # all an empty query gets


SETTING_NAMES = {"k": "diagnose_k"}  # a threshold whose setting has another name


def _default(name: str) -> Any:
    """The default of the setting behind threshold ``name``: the settings own it."""
    return AuditSettings.model_fields[SETTING_NAMES.get(name, name)].default


@dataclass(frozen=True)
class Thresholds:
    """Every configurable number a rule uses, with the defaults (and names) of the settings."""

    k: int = _default("k")  # the cut-off at which misses are diagnosed
    slow_ms: float = _default("slow_ms")
    scatter_limit: int = _default("scatter_limit")
    drift_overlap: float = _default("drift_overlap")  # overlap@k (served vs replayed) below: drift
    crowded_share: float = _default("crowded_share")  # one document/duplicate group's top-k share
    duplicate_jaccard: float = _default("duplicate_jaccard")  # content-word Jaccard: near-duplicate
    low_term_overlap: float = _default("low_term_overlap")  # query terms' share below: mismatch
    high_term_overlap: float = _default("high_term_overlap")  # at or above: not about vocabulary

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> Thresholds:
        return cls(**{f.name: getattr(settings, SETTING_NAMES.get(f.name, f.name))
                      for f in fields(cls)})


# an answer sentence's class (``auditor.trace`` says how each is decided), in report order
SentenceStatus = Literal["supported", "retrievable_not_retrieved", "contradicted", "ungrounded"]
SENTENCE_CLASSES: tuple[SentenceStatus, ...] = get_args(SentenceStatus)


@dataclass(frozen=True, slots=True)
class ConflictRef:
    """A retrieved chunk that states another value where an answer sentence states one."""

    chunk_id: str
    doc_id: str
    origin: Literal["served", "replayed"]
    rank: int  # its rank in that list
    kind: str  # "number" | "date" | "name"
    answer: str  # the sentence's value as written, e.g. "9,984"
    passage: str  # the passage's value as written, e.g. "9,312"


@dataclass
class SentenceSupport:
    """What the trace found for one factual answer sentence (see ``auditor.trace``)."""

    index: int
    text: str
    supported_served: bool
    replayed_rank: int | None  # best replayed rank of a supporting chunk, None if none
    supported_index: bool  # supported by some chunk anywhere in the index
    composite_only: bool  # supported only by adjacent chunks joined
    best_chunk_id: str | None
    best_doc_id: str | None
    best_score: float
    # retrieved chunks stating another value (unsupported sentences only); see auditor.trace
    conflicts: list[ConflictRef] = field(default_factory=list)


@dataclass
class QueryCase:
    """Everything known about one replayed query when it is diagnosed."""

    query_id: str
    query: str
    status: str  # ok | empty | error
    hits: Sequence[Hit]  # replayed ranking (mode of the run), to the probe depth
    depth: int
    mode: str
    level: Level
    targets: list[str]  # ids that should be retrieved: judged relevant, else silver evidence
    silver: bool  # targets come from answer evidence, not judgments
    missing_targets: list[str]  # targets not in the index at all (membership check)
    served: list[str] | None  # what production served (ids at the run's level), if logged
    replay_latency_ms: float | None
    served_latency_ms: float | None
    sentences: list[SentenceSupport] = field(default_factory=list)
    scatter_docs: int | None = None
    scatter_chunks: int | None = None
    ablations: dict[str, list[Hit]] = field(default_factory=dict)  # "bm25", "dense", "exact", ...
    texts: dict[str, str] = field(default_factory=dict)  # chunk id → title + text, for evidence
    query_terms: list[str] = field(default_factory=list)  # analyzed query terms
    target_terms: dict[str, list[str]] = field(default_factory=dict)  # target id → analyzed terms
    explain: dict[str, Any] = field(default_factory=dict)  # target id → _explain (Elasticsearch)
    notes: dict[str, str] = field(default_factory=dict)  # what gather could not get → why

    def with_findings(self, findings: Findings) -> QueryCase:
        """This case with what ``auditor.ablations.gather`` found for it."""
        return replace(self, **{f.name: getattr(findings, f.name) for f in fields(findings)})


@dataclass
class Findings:
    """What ``auditor.ablations.gather`` found for one case (the fields of ``QueryCase`` of
    the same names): filled while gathering, then attached by the caller."""

    ablations: dict[str, list[Hit]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    query_terms: list[str] = field(default_factory=list)
    target_terms: dict[str, list[str]] = field(default_factory=dict)
    explain: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Diagnosis:
    query_id: str
    cause: Cause
    target_id: str | None
    evidence: dict[str, Any]


# rankings at the case's level ----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Ranking:
    """A hit list at one level: ids in rank order, each with its rank, best score and chunk.

    ``score`` and ``chunk`` are built on first use: most cases never read them (only a few
    rules and the ablations do), and building them for every case was a third of the cost
    of a diagnosis (bench/scale.py)."""

    ids: list[str]
    ranks: dict[str, int]
    hits: Sequence[Hit] = field(repr=False)
    keys: list[str] = field(repr=False)  # each hit's id at the level, in rank order

    @classmethod
    def of(cls, hits: Sequence[Hit], level: str) -> Ranking:
        """Hits in rank order: an id's first occurrence is its best. Built with dict
        constructors, not a loop with a branch per hit (it runs twice per query)."""
        keys = hit_field(hits, "doc_id" if level == "doc" else "chunk_id")
        ids = list(dict.fromkeys(keys))
        return cls(ids, dict(zip(ids, range(1, len(ids) + 1), strict=True)), hits, keys)

    @cached_property
    def _best(self) -> dict[str, Hit]:
        return dict(zip(reversed(self.keys), reversed(list(self.hits)), strict=True))  # first wins

    @cached_property
    def score(self) -> dict[str, float]:
        return {item: self._best[item].score for item in self.ids}

    @cached_property
    def chunk(self) -> dict[str, str]:
        return {item: self._best[item].chunk_id for item in self.ids}

    def rank(self, item: str) -> int | None:
        return self.ranks.get(item)

    def within(self, item: str, k: int) -> bool:
        rank = self.rank(item)
        return rank is not None and rank <= k


def missed_targets(case: QueryCase, k: int, replayed: Ranking | None = None) -> list[str]:
    """Targets in the index but not in the replayed top-k, in target order (``replayed``:
    the case's ranking, when the caller has it already)."""
    if not case.targets:
        return []
    if replayed is None:
        replayed = Ranking.of(case.hits, case.level)
    missing = set(case.missing_targets)
    return [t for t in case.targets if t not in missing and not replayed.within(t, k)]


def uncovered_sentences(case: QueryCase, k: int) -> list[SentenceSupport]:
    """Sentences the index supports that no replayed chunk within rank k supports."""
    return [s for s in case.sentences if s.supported_index
            and (s.replayed_rank is None or s.replayed_rank > k)]


def term_overlap(case: QueryCase, target: str) -> float | None:
    """Share of the distinct analyzed query terms found among the target's terms."""
    terms = set(case.query_terms)
    if not terms or target not in case.target_terms:
        return None
    return len(terms & set(case.target_terms[target])) / len(terms)
