"""Conflicts between answer sentences and retrieved chunks (``conflicts``): where a served or
replayed chunk states another number, date or name than the sentence (issue 15). One row per
(sentence, chunk) of a sentence that no chunk supports or that only the index supports; a
``contradicted`` sentence has at least one. Both values are kept as written, so the trace
can say "the passage says 9,312, the answer says 9,984" without the index.

Rows come from ``auditor.metrics.per_query.trace_tables``, locally or from a Ray worker's
Arrow tables, and go in with the batch's other rows.
"""

from __future__ import annotations

import duckdb

from auditor.store.schema import migration

CONFLICTS = "conflicts"  # the table name a batch's rows go to


@migration
def m013_sentence_conflicts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE conflicts (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,
            origin VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            chunk_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            answer_value VARCHAR NOT NULL,
            passage_value VARCHAR NOT NULL
        )
        """
    )
