"""The shared vocabulary: log records, corpus chunks, judgments, hits, quarantine entries.

Pydantic models sit at the edges (what users hand us); plain dataclasses are used for the
values that flow through hot loops (hits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
)

from auditor.decode import GRADE_MAX, GRADE_MIN

# Numbers users hand us: finite (NaN and Infinity are defects, not values), and grades small
# enough to sum as float64 and store as int64.
FiniteNumber = Annotated[StrictFloat, AllowInfNan(False)] | StrictInt
Grade = Annotated[StrictInt, Field(ge=GRADE_MIN, le=GRADE_MAX)]

# How a query is replayed. bm25, dense (approximate kNN where the index has it), hybrid
# (client-side RRF of both), template (the production request body). Two more exist for
# diagnosis ablations: exact (brute-force kNN: what dense would return without
# approximation) and unfiltered (the template with its filter clauses stripped); both may
# also be run on their own.
Mode = Literal["bm25", "dense", "hybrid", "template", "exact", "unfiltered"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid", "template", "exact", "unfiltered")
VECTOR_MODES: tuple[Mode, ...] = ("dense", "hybrid", "exact")  # always need the encoder
MODE_SYNONYMS = {"knn": "dense"}  # Elasticsearch users say knn
# What a target is: a whole document or one chunk of it.
Level = Literal["doc", "chunk"]
# A gate's verdict, and a run's: the worst of its gates'.
GateStatus = Literal["passed", "failed", "not_evaluated"]
NOT_EVALUATED: GateStatus = "not_evaluated"


def overall(statuses: list[str]) -> GateStatus:
    """Failed if any gate failed, else not evaluated if any was not, else passed."""
    if "failed" in statuses:
        return "failed"
    return NOT_EVALUATED if NOT_EVALUATED in statuses else "passed"


class ServedItem(BaseModel):
    """One entry of what production served for a query: ``id`` is a chunk or a document id
    (the run's level says how it is compared), so it is neither ``chunk_id`` nor ``doc_id``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    rank: StrictInt | None = Field(default=None, ge=1, le=10**9)
    score: FiniteNumber | None = None


def _also(name: str, old: str) -> Any:
    """A field read under its name or its name before issue 11, so old logs read the same."""
    return AliasChoices(name, old)


# Log field names used before issue 11 → today's names (the README's log table says why).
OLD_LOG_FIELDS = {
    "timestamp": "logged_at",
    "retrieved": "served",
    "relevant": "judgments",
    "latency_ms": "served_latency_ms",
}


class LogRecord(BaseModel):
    """One logged retrieval: the line format of a JSONL query log (see README).

    Names are the store's: ``served*`` is what production did, ``replay_*`` what the replay
    did; the names of ``OLD_LOG_FIELDS`` are accepted too.
    """

    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(min_length=1)
    query: str = Field(min_length=1)
    logged_at: datetime | None = Field(default=None, validation_alias=_also(
        "logged_at", "timestamp"))
    served: list[ServedItem] | None = Field(default=None, validation_alias=_also(
        "served", "retrieved"))
    answer: str | None = None
    cited: list[str] | None = None
    judgments: dict[str, Grade] | None = Field(default=None, validation_alias=_also(
        "judgments", "relevant"))
    served_latency_ms: FiniteNumber | None = Field(default=None, ge=0, validation_alias=_also(
        "served_latency_ms", "latency_ms"))
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("query_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Integer ids are common in exported logs; booleans and floats are not ids.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank")
        return value

    def served_ids(self) -> list[str]:
        """Served ids in served order (by rank when ranks are given, else list order)."""
        items = self.served or []
        if all(item.rank is not None for item in items):
            items = sorted(items, key=lambda item: item.rank or 0)
        return [item.id for item in items]


class Chunk(BaseModel):
    """One retrievable unit of the corpus. A document is one or more chunks."""

    model_config = ConfigDict(extra="ignore")

    chunk_id: str = Field(min_length=1)
    doc_id: str = Field(min_length=1)
    position: int = 0
    title: str = ""
    text: str = ""


class Qrel(BaseModel):
    """One judgment; a grade >= 1 means relevant (as trec_eval)."""

    query_id: str
    doc_id: str
    grade: int
    iteration: str | None = None  # a TREC file's second column as read (kept on export)


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked search result. Rank is 1-based."""

    chunk_id: str
    doc_id: str
    rank: int
    score: float


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record we could not accept, with where it came from and why."""

    source: str
    line: int
    field: str
    reason: str
    raw: str
