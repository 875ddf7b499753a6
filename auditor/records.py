"""The shared vocabulary: log records, corpus chunks, judgments, hits, quarantine entries.

Pydantic models sit at the edges (what users hand us); plain dataclasses are used for the
values that flow through hot loops (hits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, overload

import numpy as np
from pydantic import (
    AfterValidator,
    AliasChoices,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
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


def query_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("query is blank")
    return value


def id_as_text(value: Any) -> Any:
    """Integer ids are common in exported logs; booleans and floats are not ids."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The fields a log record and a sampled run's first pass (LogKey) check alike
QueryId = Annotated[str, BeforeValidator(id_as_text), Field(min_length=1)]
QueryText = Annotated[str, Field(min_length=1), AfterValidator(query_not_blank)]
LoggedAt = Annotated[datetime | None, Field(validation_alias=_also("logged_at", "timestamp"))]


class LogRecord(BaseModel):
    """One logged retrieval: the line format of a JSONL query log (see README).

    Names are the store's: ``served*`` is what production did, ``replay_*`` what the replay
    did; the names of ``OLD_LOG_FIELDS`` are accepted too.
    """

    model_config = ConfigDict(extra="forbid")

    query_id: QueryId
    query: QueryText
    logged_at: LoggedAt = None
    served: list[ServedItem] | None = Field(default=None, validation_alias=_also(
        "served", "retrieved"))
    answer: str | None = None
    cited: list[str] | None = None
    judgments: dict[str, Grade] | None = Field(default=None, validation_alias=_also(
        "judgments", "relevant"))
    served_latency_ms: FiniteNumber | None = Field(default=None, ge=0, validation_alias=_also(
        "served_latency_ms", "latency_ms"))
    metadata: dict[str, Any] = Field(default_factory=dict)

    def served_ids(self) -> list[str]:
        """Served ids in served order (by rank when ranks are given, else list order)."""
        items = self.served or []
        if all(item.rank is not None for item in items):
            items = sorted(items, key=lambda item: item.rank or 0)
        return [item.id for item in items]


class LogKey(BaseModel):
    """What a sampled run's first pass checks of every JSONL log line: the id it samples by
    and a query to replay (``auditor.sampled.log_key`` adds the fields a stratum is made
    of). The rest of the line is checked only when the sample picks it: parsing a line's
    served list, metadata and timestamp into objects costs more than the line's check."""

    model_config = ConfigDict(extra="ignore")

    query_id: QueryId
    query: QueryText


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


class HitList(Sequence[Hit]):
    """A ranking held as columns: ids as object arrays, scores as float64, ranks 1..n.

    Why: the embedded index answers 100 hits a query, and making a :class:`Hit` per hit
    was ~40% of its bare search; every batch then read them back field by field to build
    its tables (bench/scale.py). A ``HitList`` is three array slices; a ``Hit`` is made only
    where one is asked for (iterating, indexing), so callers that want objects still get
    them, and the batch's tables read the columns at once (:func:`hit_field`)."""

    __slots__ = ("chunk_ids", "doc_ids", "scores")

    def __init__(self, chunk_ids: np.ndarray, doc_ids: np.ndarray, scores: np.ndarray) -> None:
        self.chunk_ids, self.doc_ids = chunk_ids, doc_ids
        self.scores = np.asarray(scores, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.scores)

    @overload
    def __getitem__(self, index: int) -> Hit: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Hit]: ...

    def __getitem__(self, index: int | slice) -> Hit | Sequence[Hit]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if start or step != 1:  # ranks would no longer start at 1: plain hits
                return list(self)[index]
            return HitList(self.chunk_ids[:stop], self.doc_ids[:stop], self.scores[:stop])
        row = range(len(self))[index]
        return Hit(self.chunk_ids[row], self.doc_ids[row], row + 1, float(self.scores[row]))

    def __iter__(self) -> Iterator[Hit]:
        return map(Hit, self.chunk_ids.tolist(), self.doc_ids.tolist(),
                   range(1, len(self) + 1), self.scores.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  (a list of hits is not hashable either)

    def __repr__(self) -> str:
        return f"HitList({list(self)!r})"


def hit_field(hits: Sequence[Hit], name: Literal["chunk_id", "doc_id"]) -> list[str]:
    """The hits' chunk ids or document ids in rank order (a ``HitList``'s column as is)."""
    if isinstance(hits, HitList):
        return (hits.chunk_ids if name == "chunk_id" else hits.doc_ids).tolist()
    return [getattr(hit, name) for hit in hits]


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record we could not accept, with where it came from and why."""

    source: str
    line: int
    field: str
    reason: str
    raw: str
