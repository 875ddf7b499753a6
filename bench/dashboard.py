"""How fast is the dashboard on a large store? Page loads and the key SQL on 100k queries.

    .venv/bin/python bench/dashboard.py [--queries 100000] [--docs 200000] [--repeats 3]
                                        [--no-browser] [--out bench/results]

A synthetic store (fixed seed) with two runs of ``--queries`` logged queries each, at the
row counts a real audit writes: 20 hits per query, every metric (72 long rows per query),
three traced sentences with two supports each, causes for about 40% of the queries, doc and
chunk scatter, corpus coverage of ``--docs`` documents, gates and the stored comparison; and
a ``chunks.jsonl`` index file so the answer trace reads real chunk texts. It is written with
Arrow inserts and cached under ``<out>/dashboard-store/`` (rebuilt when the sizes change).

Measured, medians of ``--repeats``:

- **SQL**: each reader of ``dashboards/*_data.py`` called with an empty ``st.cache_data``
  (cold), the way a page's first visit after a nightly run calls it; plus ``compare_runs``
  as the Compare page runs it.
- **AppTest page loads**: each page's script run under ``streamlit.testing.v1.AppTest``,
  cold (caches cleared first) and warm (the same page run again: cached results).
- **Browser** (unless ``--no-browser`` or no /usr/bin/chromium): ``streamlit run`` on
  127.0.0.1 and headless Chromium; time from navigation to the page's heading shown with the
  script finished, first visit after the server started (cold) and a second visit (warm).

Results: ``<out>/dashboard.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from auditor.store import Store  # noqa: E402

KS = (1, 5, 10, 20, 100)
AT_K = ("recall", "precision", "hit", "mrr", "ndcg", "judged", "complete", "answer_coverage",
        "gatherable", "overlap", "served_recall", "silver_recall", "recall_delta")
PLAIN = ("answer_coverage", "index_coverage", "scatter_docs", "scatter_chunks",
         "scatter_judged", "effective_sources", "rbo")
METRICS = [f"{m}@{k}" for m in AT_K for k in KS] + list(PLAIN)
CAUSES = ("ranked_below_k", "not_retrieved", "vocabulary_mismatch", "drifted",
          "unsupported_answer", "not_indexed", "scattered", "slow")
HITS, SENTENCES, SUPPORTS = 20, 3, 2
WORDS = [f"w{i}" for i in range(3000)]
PAGES = ("overview", "why", "queries", "trace", "corpus", "scatter", "compare")
HEADINGS = {"overview": "Overview", "why": "Why retrieval fails", "queries": "Query explorer",
            "trace": "Answer trace", "corpus": "Corpus coverage", "scatter": "Scatter",
            "compare": "Compare runs"}


# the synthetic store ---------------------------------------------------------------------
def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def sentences(rng: np.random.Generator, n: int, words: int = 14) -> list[str]:
    picks = rng.integers(0, len(WORDS), size=(n, words))
    return [" ".join(WORDS[j] for j in row).capitalize() + "." for row in picks]


def dictionary(indices: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(values))


def run_tables(run_id: str, q: int, docs: int, seed: int, worse: float) -> dict[str, pa.Table]:
    """Every per-query table of one run, as Arrow."""
    rng = np.random.default_rng(seed)
    qids, dids = ids("q", q), ids("d", docs)
    qi = np.arange(q)
    texts = sentences(rng, q, 9)
    answers_s = np.array(sentences(rng, q * SENTENCES)).reshape(q, SENTENCES)
    answers = [" ".join(row) for row in answers_s]
    meta = [json.dumps({"tenant": f"t{i % 5}", "app_version": f"1.{i % 3}",
                        "channel": ("web", "api", "slack")[i % 3]}) for i in range(q)]
    doc_of = (rng.zipf(1.3, size=(q, HITS)) * 7919 + qi[:, None] * 31) % docs
    served = [json.dumps([{"id": dids[d], "rank": r + 1, "score": round(10 - r * 0.4, 3)}
                          for r, d in enumerate(row[:10])]) for row in doc_of]
    start = np.datetime64("2026-11-01T00:00:00") + (qi * 86_400 // q).astype("timedelta64[s]")
    tables: dict[str, pa.Table] = {}
    tables["query_results"] = pa.table({
        "run_id": [run_id] * q, "seq": qi, "query_id": qids, "query": texts,
        "status": dictionary(np.where(qi % 997 == 0, 1, 0), ["ok", "empty"]),
        "n_hits": np.full(q, HITS, np.int32), "replay_latency_ms": rng.gamma(2, 40, q),
        "logged_at": pa.array(start, pa.timestamp("s", tz="UTC")),
        "served_latency_ms": rng.gamma(2, 60, q), "served": served, "answer": answers,
        "metadata": meta})
    hq = np.repeat(qi, HITS)
    tables["hits"] = pa.table({
        "run_id": dictionary(np.zeros(q * HITS, np.int32), [run_id]), "seq": hq,
        "query_id": dictionary(hq, qids), "rank": np.tile(np.arange(1, HITS + 1), q),
        "chunk_id": dictionary(doc_of.ravel(), dids), "doc_id": dictionary(doc_of.ravel(), dids),
        "score": (20 - np.tile(np.arange(HITS), q) * 0.5 + rng.random(q * HITS))})
    relevant = doc_of[:, 0]
    tables["judgments"] = pa.table({
        "run_id": [run_id] * q, "query_id": qids, "doc_id": dictionary(relevant, dids),
        "grade": np.ones(q, np.int32)})
    mq = np.repeat(qi, len(METRICS))
    values = np.clip(rng.beta(4, 1.5, q * len(METRICS)) - worse, 0, 1)
    values[rng.random(q * len(METRICS)) < 0.08] = np.nan
    tables["metrics"] = pa.table({
        "run_id": dictionary(np.zeros(len(mq), np.int32), [run_id]),
        "query_id": dictionary(mq, qids),
        "metric": dictionary(np.tile(np.arange(len(METRICS)), q), METRICS),
        "value": pa.array(values, from_pandas=True)})
    sq = np.repeat(qi, SENTENCES)
    lengths = np.char.str_len(answers_s.ravel().astype(str))
    starts = np.zeros((q, SENTENCES), np.int64)
    starts[:, 1:] = np.cumsum(lengths.reshape(q, SENTENCES) + 1, axis=1)[:, :-1]
    starts = starts.ravel()
    status = rng.choice(3, size=q * SENTENCES, p=[0.7 - worse, 0.2 + worse, 0.1])
    best = doc_of[sq, rng.integers(0, HITS, q * SENTENCES)]
    tables["sentences"] = pa.table({
        "run_id": [run_id] * len(sq), "query_id": dictionary(sq, qids),
        "idx": np.tile(np.arange(SENTENCES), q).astype(np.int32),
        "text": answers_s.ravel().tolist(), "start_char": starts.astype(np.int32),
        "end_char": (starts + lengths).astype(np.int32),
        "status": dictionary(status, ["supported", "retrievable_not_retrieved", "ungrounded"]),
        "served_score": rng.random(len(sq)), "replayed_rank": rng.integers(1, 30, len(sq)),
        "best_chunk_id": dictionary(best, dids), "best_doc_id": dictionary(best, dids),
        "best_score": rng.random(len(sq)), "composite": np.zeros(len(sq), bool)})
    pq = np.repeat(sq, SUPPORTS)
    pdoc = doc_of[pq, rng.integers(0, HITS, len(pq))]
    tables["support"] = pa.table({
        "run_id": [run_id] * len(pq), "query_id": dictionary(pq, qids),
        "idx": np.tile(np.repeat(np.arange(SENTENCES), SUPPORTS), q).astype(np.int32),
        "origin": dictionary(np.tile([0, 1], len(pq) // 2), ["served", "replayed"]),
        "chunk_id": dictionary(pdoc, dids), "doc_id": dictionary(pdoc, dids),
        "rank": rng.integers(1, HITS + 1, len(pq)).astype(np.int32),
        "score": 0.8 + rng.random(len(pq)) * 0.2})
    tables["diagnoses"] = diagnoses(rng, run_id, q, qids, dids, relevant, worse)
    size = rng.geometric(0.6, q).astype(np.int32)
    tables["scatter"] = pa.table({
        "run_id": [run_id] * (2 * q), "query_id": dictionary(np.repeat(qi, 2), qids),
        "level": dictionary(np.tile([0, 1], q), ["doc", "chunk"]),
        "size": np.repeat(size, 2), "approx": np.zeros(2 * q, bool),
        "sources": [json.dumps(dids[:1])] * (2 * q)})
    counts = np.bincount(doc_of[:, :10].ravel(), minlength=docs)
    tables["corpus_coverage"] = pa.table({
        "run_id": [run_id] * docs, "doc_id": dids, "title": [f"Title {d}" for d in dids],
        "retrieved_at_k": counts.astype(np.int32),
        "retrieved_at_depth": np.bincount(doc_of.ravel(), minlength=docs).astype(np.int32),
        "best_rank": np.ones(docs, np.int32), "self_rank": np.ones(docs, np.int32),
        "reachable": rng.random(docs) > 0.02})
    return tables


def diagnoses(rng: np.random.Generator, run_id: str, q: int, qids: list[str],
              dids: list[str], relevant: np.ndarray, worse: float) -> pa.Table:
    """About 40% (plus ``worse``) of the queries get one to three causes."""
    hit = np.flatnonzero(rng.random(q) < 0.4 + worse)
    per = rng.integers(1, 4, len(hit))
    dq = np.repeat(hit, per)
    cause = rng.integers(0, len(CAUSES), len(dq))
    target = [dids[relevant[i]] if c < 3 or c == 5 else None for i, c in zip(dq, cause,
                                                                          strict=True)]
    evidence = [json.dumps({"rank": 14, "k": 10, "score": 4.1, "score_at_k": 5.0,
                            "score_gap": 0.9, "bm25_rank": 14, "dense_rank": 3})] * len(dq)
    return pa.table({"run_id": [run_id] * len(dq), "query_id": dictionary(dq, qids),
                     "cause": dictionary(cause, list(CAUSES)), "target_id": target,
                     "evidence": evidence})


def write_chunks(path: Path, docs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        for doc, text in zip(ids("d", docs), sentences(rng, docs, 60), strict=True):
            handle.write(json.dumps({"chunk_id": doc, "doc_id": doc, "position": 0,
                                     "title": f"Title {doc}", "text": text}) + "\n")


def build(directory: Path, q: int, docs: int) -> tuple[Path, str, str, bool]:
    """The two-run store, its run ids, and whether it was reused (cached while the sizes
    match)."""
    marker = directory / "sizes.json"
    path = directory / "audit.duckdb"
    wanted = {"queries": q, "docs": docs, "format": 1}
    if marker.exists() and json.loads(marker.read_text()).get("sizes") == wanted:
        saved = json.loads(marker.read_text())
        return path, saved["baseline"], saved["current"], True
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "index").mkdir(parents=True)
    write_chunks(directory / "index" / "chunks.jsonl", docs, 1)
    store = Store(path)
    run_ids = ["20261101T020000Z-base01", "20261102T020000Z-curr02"]
    for i, run_id in enumerate(run_ids):
        store.create_run(run_id, backend="embedded", mode="bm25", level="doc",
                         config={"diagnose_k": 10, "scatter_limit": 3},
                         fingerprint={"params": {"directory": str(directory / "index")}},
                         code_version="bench")
        store.append(run_tables(run_id, q, docs, seed=i, worse=0.05 * i))
        store.finish_run(run_id, "complete", None, {"replayed": q})
    from auditor.compare import compare_runs, comparison_table
    from auditor.config import DEFAULT_GATES
    from auditor.gates import evaluate, gates_table

    result = compare_runs(store, *run_ids, resamples=2_000)
    means = {m["metric"]: m["mean"] for m in store.metric_means(run_ids[1])}
    store.record_gates(run_ids[1], run_ids[0],
                       gates_table(run_ids[1], evaluate(DEFAULT_GATES, means, result)),
                       comparison_table(result))
    with store.connect() as con:
        con.execute("CHECKPOINT")
    marker.write_text(json.dumps({"sizes": wanted, "baseline": run_ids[0],
                                  "current": run_ids[1]}))
    return path, run_ids[0], run_ids[1], False


# measuring -------------------------------------------------------------------------------
def median_time(func: Callable[[], Any], repeats: int, before: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sql_timings(path: Path, base: str, run: str, query: str, repeats: int
                ) -> dict[str, float]:
    import streamlit as st

    from auditor.compare import compare_runs
    from dashboards import corpus_data, data, query_data
    from dashboards.compare_data import LIMIT, RESAMPLES
    from dashboards.data import Segment
    from dashboards.query_data import QueryFilter

    src = data.source(path)
    acme = Segment((("tenant", ("t1",)),))
    flt = QueryFilter(sort="recall@10", order="DESC")
    cases: dict[str, Callable[[], Any]] = {
        "runs": lambda: data.runs(src),
        "metric_summary (10 metrics)": lambda: data.metric_summary(
            src, run, tuple(data.headline_metrics(10))),
        "trend (4 metrics, comparable runs)": lambda: data.trend(
            src, run, tuple(data.trend_metrics(10))),
        "regressed (top 6)": lambda: data.regressed(src, base, run, "recall@10", 6),
        "causes": lambda: data.causes(src, run),
        "causes (tenant segment)": lambda: data.causes(src, run, acme),
        "cause_examples (every cause)": lambda: data.cause_examples(src, run),
        "cause_trend": lambda: data.cause_trend(src, tuple(data.comparable(src, run)["run_id"])),
        "segment_values": lambda: data.segment_values(src, run),
        "query_page (sorted by recall@10)": lambda: query_data.query_page(
            src, run, 10, Segment(), flt, 1, 50),
        "query_page (search + cause)": lambda: query_data.query_page(
            src, run, 10, Segment(), QueryFilter(search="w1", causes=("not_retrieved",)), 1, 50),
        "query_page (page 1000)": lambda: query_data.query_page(
            src, run, 10, Segment(), QueryFilter(), 1000, 50),
        "query_trace (one query)": lambda: query_data.query_trace(src, run, query),
        "targets (one query)": lambda: query_data.targets(src, run, query, "doc"),
        "chunk_texts (6 chunks, jsonl scan)": lambda: query_data.chunk_texts(
            src, run, tuple(ids("d", 6))),
        "corpus_summary": lambda: corpus_data.corpus_summary(src, run),
        "lorenz": lambda: corpus_data.lorenz(src, run),
        "documents (never retrieved, page 1)": lambda: corpus_data.documents(
            src, run, "never retrieved at k", 1, 100),
        "worst_scatter": lambda: corpus_data.worst_scatter(src, run, 10),
        "query_csv (all rows, on click)": lambda: query_data.query_csv(
            src, run, 10, Segment(), QueryFilter()),
        "compare_runs (as the Compare page)": lambda: compare_runs(
            Store(path), base, run, resamples=RESAMPLES, limit=LIMIT),
    }
    return {name: median_time(case, repeats, st.cache_data.clear)
            for name, case in cases.items()}


def apptest_timings(path: Path, run: str, query: str, repeats: int
                    ) -> dict[str, dict[str, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["AUDITOR_STORE"] = str(path)
    app = str(REPO / "dashboards" / "app.py")
    results: dict[str, dict[str, float]] = {}
    for page in PAGES:
        cold, warm = [], []
        for _ in range(repeats):
            at = AppTest.from_file(app, default_timeout=600)
            at.query_params.update({"run": run} | ({"query": query}
                                                   if page in ("queries", "trace") else {}))
            at.run()
            st.cache_data.clear()
            if page != "overview":
                at.switch_page(f"views/{page}.py")
            start = time.perf_counter()
            at.run()
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - start)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].message}")
        results[page] = {"cold": statistics.median(cold), "warm": statistics.median(warm)}
    return results


def browser_timings(path: Path, run: str, query: str) -> dict[str, dict[str, float]]:
    """First (cold) and second (warm) visit of each page in headless Chromium."""
    from playwright.sync_api import sync_playwright

    from dashboards import serving

    results: dict[str, dict[str, float]] = {}
    with serving(path) as base, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu"])
        page = chromium.new_page(viewport={"width": 1440, "height": 1000})
        for name in PAGES:
            where = "" if name == "overview" else name
            extra = f"&query={query}" if name in ("queries", "trace") else ""
            url = f"{base}/{where}?run={run}{extra}"
            results[name] = {visit: visit_time(page, url, HEADINGS[name])
                             for visit in ("cold", "warm")}
        chromium.close()
    return results


def visit_time(page: Any, url: str, heading: str) -> float:
    start = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=600_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=600_000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    path, base, run, reused = build(args.out / "dashboard-store", args.queries, args.docs)
    built = time.perf_counter() - started
    with Store(path).connect(read_only=True) as con:
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in
                ("query_results", "hits", "metrics", "sentences", "support", "diagnoses",
                 "scatter", "corpus_coverage")}
    how = "reused" if reused else f"built in {built:.1f} s"
    print(f"store {path} ({path.stat().st_size / 1e6:,.0f} MB, {how}): "
          + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    query = ids("q", args.queries)[args.queries // 2]
    sql = sql_timings(path, base, run, query, args.repeats)
    pages = apptest_timings(path, run, query, args.repeats)
    browser = ({} if args.no_browser or not Path("/usr/bin/chromium").exists()
               else browser_timings(path, run, query))
    print("\n| SQL reader (cold, median) | ms |\n|---|---:|")
    for name, seconds in sql.items():
        print(f"| {name} | {seconds * 1000:,.0f} |")
    print("\n| page | AppTest cold s | AppTest warm s | browser cold s | browser warm s |")
    print("|---|---:|---:|---:|---:|")
    for page in PAGES:
        b = browser.get(page, {})
        print(f"| {page} | {pages[page]['cold']:.2f} | {pages[page]['warm']:.2f} | "
              f"{b.get('cold', float('nan')):.2f} | {b.get('warm', float('nan')):.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard.json").write_text(json.dumps({
        "queries": args.queries, "docs": args.docs, "rows": rows,
        "build_s": None if reused else built,
        "store_mb": path.stat().st_size / 1e6, "sql_s": sql, "apptest_s": pages,
        "browser_s": browser, "repeats": args.repeats, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
