"""Corpus coverage and scatter reads: per-document retrieval counts aggregated in SQL (the
Lorenz curve sampled to a few hundred points), and scatter distributions with the worst cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditor.store.read.dashboard_frames import frame

DOC_FILTERS: dict[str, str] = {
    "never retrieved at k": "retrieved_at_k = 0",
    "never retrieved at depth": "retrieved_at_depth = 0",
    "unreachable": "reachable = FALSE",
    "all": "TRUE",
}
LORENZ_POINTS = 200
# A document's collection: the prefix of a ``source:id`` or ``source/id`` id, else 'all'.
COLLECTION = ("CASE WHEN contains(doc_id, ':') THEN split_part(doc_id, ':', 1) "
              "WHEN contains(doc_id, '/') THEN split_part(doc_id, '/', 1) ELSE 'all' END")
DOCUMENT_COLUMNS = ("doc_id, title, retrieved_at_k, retrieved_at_depth, best_rank, self_rank, "
                    "reachable")


@dataclass(frozen=True)
class CorpusSummary:
    """What the corpus pass counted: documents, how many reached the top k (and depth), how
    many were probed for reachability and failed it, and how unequal retrieval is."""

    documents: int
    retrieved_at_k: int
    never_at_k: int
    never_at_depth: int
    unreachable: int
    probed: int
    gini: float | None  # None: no document retrieved at all
    coverage: float | None  # share of documents retrieved at k; None without documents


def corpus_summary(path: Path | str, run_id: str) -> CorpusSummary:
    """Documents, coverage at k, never-retrieved and unreachable counts, Gini."""
    row = frame(path, """
        WITH s AS (SELECT retrieved_at_k AS x, retrieved_at_depth, reachable,
                          row_number() OVER (ORDER BY retrieved_at_k) AS i
                   FROM corpus_coverage WHERE run_id = $run)
        SELECT count(*) AS documents,
               count(*) FILTER (WHERE x > 0) AS retrieved_at_k,
               count(*) FILTER (WHERE x = 0) AS never_at_k,
               count(*) FILTER (WHERE retrieved_at_depth = 0) AS never_at_depth,
               count(*) FILTER (WHERE reachable = FALSE) AS unreachable,
               count(*) FILTER (WHERE reachable IS NOT NULL) AS probed,
               CASE WHEN count(*) > 0 AND sum(x) > 0
                    THEN 2 * sum(i * x) / (count(*) * sum(x)) - (count(*) + 1) / count(*)
               END AS gini
        FROM s""", {"run": run_id}).iloc[0]
    counts = {name: int(row[name]) for name in ("documents", "retrieved_at_k", "never_at_k",
                                                "never_at_depth", "unreachable", "probed")}
    documents = counts["documents"]
    return CorpusSummary(**counts, gini=None if pd.isna(row["gini"]) else float(row["gini"]),
                         coverage=counts["retrieved_at_k"] / documents if documents else None)


def lorenz(path: Path | str, run_id: str) -> pd.DataFrame:
    """Share of retrievals held by the least-retrieved share of documents, sampled."""
    df = frame(path, """
        WITH s AS (SELECT row_number() OVER w AS i, count(*) OVER () AS n,
                          sum(retrieved_at_k) OVER w AS cum, sum(retrieved_at_k) OVER () AS total
                   FROM corpus_coverage WHERE run_id = $run
                   WINDOW w AS (ORDER BY retrieved_at_k, doc_id ROWS UNBOUNDED PRECEDING))
        SELECT i / n AS documents, cum / nullif(total, 0) AS retrievals FROM s
        WHERE i % greatest(n // $points, 1) = 0 OR i = n ORDER BY i""",
               {"run": run_id, "points": LORENZ_POINTS})
    start = pd.DataFrame({"documents": [0.0], "retrievals": [0.0]})
    return pd.concat([start, df], ignore_index=True)


def by_collection(path: Path | str, run_id: str) -> pd.DataFrame:
    """Coverage per collection (the id prefix, see ``COLLECTION``)."""
    return frame(path, f"""
        SELECT {COLLECTION} AS collection, count(*) AS documents,
               avg((retrieved_at_k > 0)::INTEGER) AS coverage,
               count(*) FILTER (WHERE retrieved_at_k = 0) AS never_at_k,
               count(*) FILTER (WHERE retrieved_at_depth = 0) AS never_at_depth,
               count(*) FILTER (WHERE reachable = FALSE) AS unreachable,
               sum(retrieved_at_k) AS retrievals
        FROM corpus_coverage WHERE run_id = $run GROUP BY ALL ORDER BY documents DESC""",
                 {"run": run_id})


def retrieval_histogram(path: Path | str, run_id: str) -> pd.DataFrame:
    """Documents by how many queries retrieved them at k (log-spaced bins above 10)."""
    return frame(path, """
        SELECT CASE WHEN retrieved_at_k <= 10 THEN retrieved_at_k::VARCHAR
                    ELSE '≥' || (10 ^ floor(log10(retrieved_at_k)))::BIGINT::VARCHAR END AS bin,
               min(retrieved_at_k) AS lo, count(*) AS documents
        FROM corpus_coverage WHERE run_id = $run GROUP BY bin ORDER BY lo""", {"run": run_id})


def documents(path: Path | str, run_id: str, which: str, page: int, size: int
              ) -> tuple[pd.DataFrame, int]:
    """A page of documents matching ``which`` (a key of DOC_FILTERS), least retrieved first."""
    condition = DOC_FILTERS.get(which, "TRUE")
    df = frame(path, f"""
        SELECT {DOCUMENT_COLUMNS}, count(*) OVER () AS total
        FROM corpus_coverage WHERE run_id = $run AND {condition}
        ORDER BY retrieved_at_k, retrieved_at_depth, doc_id LIMIT $size OFFSET $offset""",
               {"run": run_id, "size": size, "offset": max(page - 1, 0) * size})
    total = int(df["total"].iloc[0]) if len(df) else 0
    return df.drop(columns="total"), total


def all_documents(path: Path | str, run_id: str, which: str) -> pd.DataFrame:
    """Every document matching ``which``, least retrieved first (the CSV download)."""
    condition = DOC_FILTERS.get(which, "TRUE")
    return frame(path, f"SELECT {DOCUMENT_COLUMNS} FROM corpus_coverage WHERE run_id = $run "
                       f"AND {condition} ORDER BY retrieved_at_k, doc_id", {"run": run_id})


# scatter -----------------------------------------------------------------------------------
def scatter_distribution(path: Path | str, run_id: str) -> pd.DataFrame:
    """Queries by scatter size (documents and chunks); size null = no supportable sentence."""
    return frame(path, """
        SELECT level, coalesce(size::VARCHAR, 'no support') AS size, size AS n_sources,
               count(*) AS queries, count(*) FILTER (WHERE approx) AS approx
        FROM scatter WHERE run_id = $run GROUP BY ALL ORDER BY level, n_sources NULLS LAST""",
                 {"run": run_id})


def worst_scatter(path: Path | str, run_id: str, k: int, limit: int = 20) -> pd.DataFrame:
    """The queries whose answer needs the most documents, with their sources."""
    df = frame(path, """
        SELECT d.query_id, q.query, d.size AS docs, c.size AS chunks, d.approx,
               g.value AS gatherable, d.sources AS doc_sources,
               EXISTS (SELECT 1 FROM diagnoses x WHERE x.run_id = $run AND
                       x.query_id = d.query_id AND x.cause = 'scattered') AS scattered
        FROM scatter d
        JOIN query_results q ON q.run_id = d.run_id AND q.query_id = d.query_id
        LEFT JOIN scatter c ON c.run_id = d.run_id AND c.query_id = d.query_id
             AND c.level = 'chunk'
        LEFT JOIN metrics g ON g.run_id = d.run_id AND g.query_id = d.query_id
             AND g.metric = $gatherable
        WHERE d.run_id = $run AND d.level = 'doc' AND d.size IS NOT NULL
        ORDER BY d.size DESC, c.size DESC NULLS LAST, d.query_id LIMIT $lim""",
               {"run": run_id, "gatherable": f"gatherable@{k}", "lim": limit})
    df["doc_sources"] = df["doc_sources"].map(lambda text: json.loads(text) if text else [])
    return df
