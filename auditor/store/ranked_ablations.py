"""The ablation rankings a run computed for its missed queries (``ablation_hits``): the top
``diagnose_k`` of each other mode (bm25, dense, exact kNN, the template unfiltered) that the
diagnosis compared the run's own ranking with. The judging queue pools them with the run's
hits (``auditor.store.read.judging_queue``): a pair only an ablation ranks is exactly the
judgment that decides whether the run's mode missed something."""

from __future__ import annotations

import duckdb

from auditor.store.schema import migration

ABLATION_HITS = "ablation_hits"  # the table name a batch's rows go to


@migration
def m012_ablation_hits(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE ablation_hits (
            run_id VARCHAR NOT NULL,
            seq BIGINT NOT NULL,
            query_id VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            chunk_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        )
        """
    )
