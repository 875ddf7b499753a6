"""Implicit labels from the query log: what an answer cited, as a label source of its own.

For each logged answer that lists ``cited`` ids: a cited id gets grade 1, an id that was
shown to the model (served) but not cited gets grade 0, and an id never shown gets no
label at all: it is *unjudged*, not irrelevant. Every label's source is ``cited``, so the
effective grade leaves them out wherever a list holds people's labels, unless asked
(``--sources cited`` or ``all``). Ids are at the log's level (chunk or document ids, as
``served`` and ``cited`` are), and each label keeps the hash of the query text it was
given for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from auditor.errors import InputError
from auditor.judging import text_hash
from auditor.label_digest import digest
from auditor.store import Store
from auditor.store.judgment_lists import LABEL_SCHEMA, ListVersion, LoggedAnswer

SOURCE = "cited"


@dataclass(frozen=True)
class CitedLabels:
    version: ListVersion
    created: bool
    answers: int  # logged answers with cited ids
    cited: int  # labels with grade 1
    shown: int  # shown but not cited: grade 0
    unshown_cited: int  # cited ids the log does not show as served (still grade 1)


def cited_rows(answers: list[LoggedAnswer]) -> tuple[list[dict], int]:
    """Label rows of ``answers`` (cited first, then shown ids, in served order) and how
    many cited ids were not among the served ones."""
    now = datetime.now(UTC)
    rows: list[dict] = []
    unshown = 0
    for answer in answers:
        cited = list(dict.fromkeys(answer.cited))
        unshown += sum(1 for i in cited if i not in answer.served)
        grades = {i: 1 for i in cited}
        for shown in answer.served:
            grades.setdefault(shown, 0)
        query_hash = text_hash(answer.query)
        rows += [{"position": len(rows) + n, "query_id": answer.query_id,
                  "query_hash": query_hash, "doc_id": doc_id, "chunk_id": None,
                  "text_hash": None, "grade": grade, "source": SOURCE, "labeled_at": now,
                  "note": None, "iteration": None}
                 for n, (doc_id, grade) in enumerate(grades.items())]
    return rows, unshown


def labels_from_log(store: Store, run_id: str, name: str = "cited") -> CitedLabels:
    """Store the cited labels of ``run_id``'s log as the next version of list ``name``
    (nothing new when its latest version holds exactly these labels)."""
    answers = store.logged_answers(run_id)
    if not answers:
        raise InputError(f"run {run_id}'s log has no answer with `cited` ids: there is "
                         "nothing to label from it")
    rows, unshown = cited_rows(answers)
    labels = pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
    label_digest = digest(labels)
    versions = store.list_versions(name)
    created = not versions or versions[-1].digest != label_digest
    if created:
        store.add_list_version(name, labels, origin=f"cited ids of run {run_id}", note=None,
                               layout={"format": "trec", "separator": " ", "header": None},
                               digest=label_digest)
    cited = sum(row["grade"] for row in rows)
    return CitedLabels(store.list_version(name), created, len(answers), cited,
                       len(rows) - cited, unshown)
