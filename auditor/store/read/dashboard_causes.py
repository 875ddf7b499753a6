"""The dashboard's failure-cause reads: queries per cause in a segment, the causes' shares
across a group of runs, examples per cause, and the counts before and after a baseline.

Drift (production served other results than the index returns today) is no failure cause:
it is counted apart, on its own line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditor.cases import DRIFT
from auditor.store.read.dashboard_frames import frame
from auditor.store.read.dashboard_segments import WHOLE_RUN, Segment


@dataclass(frozen=True)
class Causes:
    """The failure causes of a segment's queries, and its drift apart."""

    size: int  # queries in the segment
    diagnosed: int  # of those, the queries with at least one failure cause (drift is none)
    counts: pd.DataFrame  # cause, queries, targets, share (of the segment), most queries first
    drifted: int = 0  # queries production served other results for than the index gives now


def causes(path: Path | str, run_id: str, segment: Segment = WHOLE_RUN) -> Causes:
    """Queries (and targets) per failure cause in the segment, in one aggregate: the empty
    grouping set adds the row of all causes (cause NULL), whose distinct queries are the
    diagnosed. Drifted queries are counted apart."""
    where, params = segment.where()
    df = frame(path, f"""
        WITH sel AS (SELECT query_id FROM query_results q WHERE q.run_id = $run AND {where}),
        d AS (SELECT * FROM diagnoses SEMI JOIN sel USING (query_id) WHERE run_id = $run)
        SELECT cause, count(DISTINCT query_id) AS queries, count(target_id) AS targets,
               (SELECT count(*) FROM sel) AS size,
               (SELECT count(DISTINCT query_id) FROM d WHERE cause = $drift) AS drifted
        FROM d WHERE cause <> $drift
        GROUP BY GROUPING SETS ((cause), ())""", {"run": run_id, "drift": DRIFT, **params})
    total = df[df["cause"].isna()].iloc[0]
    size = int(total["size"])
    counts = df[df["cause"].notna()].drop(columns=["size", "drifted"])
    counts["share"] = counts["queries"] / max(size, 1)
    counts = counts.sort_values(["queries", "cause"], ascending=[False, True])
    return Causes(size, int(total["queries"]), counts.reset_index(drop=True),
                  int(total["drifted"]))


def cause_trend(path: Path | str, run_ids: tuple[str, ...],
                segment: Segment = WHOLE_RUN) -> pd.DataFrame:
    """Share of each run's (segment's) queries per failure cause, for the given runs (the
    comparable ones), oldest first; drift has its own line, apart from the causes."""
    where, params = segment.where()
    return frame(path, f"""
        WITH recent AS (SELECT run_id, started_at FROM runs WHERE list_contains($runs, run_id)),
        sel AS (SELECT q.run_id, q.query_id FROM query_results q JOIN recent USING (run_id)
                WHERE {where}),
        size AS (SELECT run_id, count(*) AS n FROM sel GROUP BY run_id),
        counted AS (SELECT d.run_id, d.cause, count(DISTINCT d.query_id) AS queries
                    FROM diagnoses d JOIN sel USING (run_id, query_id) GROUP BY ALL),
        causes AS (SELECT DISTINCT cause FROM counted)
        -- every (run, cause) pair, so a cause a run did not have is drawn at 0, not left out
        SELECT r.run_id, r.started_at, c.cause, coalesce(k.queries, 0) AS queries,
               coalesce(k.queries, 0) / size.n AS share
        FROM recent r JOIN size USING (run_id) CROSS JOIN causes c
        LEFT JOIN counted k ON k.run_id = r.run_id AND k.cause = c.cause
        ORDER BY r.started_at, c.cause""", {"runs": list(run_ids), **params})


def cause_examples(path: Path | str, run_id: str, segment: Segment = WHOLE_RUN,
                   limit: int = 5) -> pd.DataFrame:
    """A few queries per cause (most targets first), each with its first row of evidence."""
    where, params = segment.where()
    df = frame(path, f"""
        SELECT d.cause, d.query_id, any_value(q.query) AS query,
               string_agg(d.target_id, ', ' ORDER BY d.target_id) AS targets,
               first(d.evidence ORDER BY d.target_id NULLS FIRST) AS evidence
        FROM diagnoses d JOIN query_results q ON q.run_id = d.run_id AND q.query_id = d.query_id
        WHERE d.run_id = $run AND {where}
        GROUP BY d.cause, d.query_id
        QUALIFY row_number() OVER (PARTITION BY d.cause ORDER BY count(*) DESC, d.query_id)
                <= $lim
        ORDER BY d.cause, count(*) DESC, d.query_id""",
               {"run": run_id, "lim": limit, **params})
    df["evidence"] = df["evidence"].map(lambda text: json.loads(text) if text else {})
    return df


def cause_changes(path: Path | str, baseline_run_id: str, run_id: str) -> pd.DataFrame:
    """Queries per cause in the baseline and in the run, over the queries both answered (the
    counts of ``Comparison.cause_counts``, without the cost of the whole comparison)."""
    return frame(path, """
        WITH shared AS (SELECT query_id FROM query_results WHERE run_id = $base INTERSECT
                        SELECT query_id FROM query_results WHERE run_id = $run)
        SELECT cause, count(DISTINCT query_id) FILTER (WHERE run_id = $base) AS baseline,
               count(DISTINCT query_id) FILTER (WHERE run_id = $run) AS current
        FROM diagnoses SEMI JOIN shared USING (query_id) WHERE run_id IN ($base, $run)
        GROUP BY cause ORDER BY current DESC, baseline DESC, cause""",
                 {"run": run_id, "base": baseline_run_id})
