"""Elasticsearch on BEIR: our figures next to the published ones, and what _msearch buys.

    .venv/bin/python bench/elasticsearch.py [--data ../shared/data] [--datasets scifact,nfcorpus]
                                            [--repeats 3] [--out bench/results]

The node: ``AUDITOR_ES_URL`` when set, else ``scripts/elasticsearch.sh`` starts one (through
``tests/es_node.elasticsearch_url``) and stops it at the end. Its state lives in
``.auditor/es-bench`` (``AUDITOR_ES_STATE`` overrides), apart from the test suite's node, so a
test session neither stops the node under the benchmark nor gets its node stopped by it.

Quality. Each full corpus is indexed with ``ElasticsearchBackend.build`` (one chunk per
document). The vectors are the MiniLM ones ``bench/beir.py`` cached for the embedded index (the
same model on the same ``title + " " + text``): a few are re-embedded and compared before use;
without that cache every abstract is embedded here, which takes minutes. The test queries are
replayed with ``search_many`` (``_msearch``, batches of 128) at depth 100 and evaluated at
document level. Runs, so that each step of the gap to the published BM25 shows:

- ``bm25``: the backend's query (``multi_match`` ``best_fields`` over title and text), standard
  analyzer: the figure this node can give;
- ``bm25, BEIR query``: BEIR's own request (``best_fields`` with ``tie_breaker`` 0.5), replayed
  in ``template`` mode, still the standard analyzer;
- ``bm25, BEIR query, english emulated``: the same request on a second index whose title and
  text (and each query) went through the standard analyzer of the node, then what Lucene's
  ``english`` analyzer adds (possessive filter, its 33 stop words, Porter stemmer), applied
  client-side with PyStemmer: analysis as in BEIR, on a node without ``analysis-common``
  (checked once against Lucene's own EnglishAnalyzer: same nDCG@10 and R@100 to 1e-4);
- ``bm25, most_fields, english emulated``: the two fields' scores summed instead;
- ``knn`` (``dense`` mode, HNSW) and ``exact`` (the flat-indexed copy): ANN loss, if any.

The embedded rows of ``bench/results/beir.json`` (bm25s with and without stemming, exact
dense) are printed alongside. Gated comparisons (same analysis or same model): ES knn against
MTEB's all-MiniLM-L6-v2, ES bm25 against the embedded bm25 without stemming, each metric within
0.02; the exit code is 1 when one fails or a search errs. The english-emulated rows against the
BEIR paper are reported, not gated.

Throughput. The same test queries (cycled to at least 1,000 a sample), in the same run, three
ways: ``search_many`` as configured (``_msearch`` of 128, ``es_concurrency`` 2 batches at a
time), ``search_many`` one batch at a time, and one ``search`` per query, sequentially, with the
very body ``search_many`` sends and its hits parsed by the same code. Query vectors are computed
once beforehand, so knn times the search, not the model. An untimed warm-up (which also checks
that the three ways rank alike), then ``--repeats`` samples in which the ways take turns pass
by pass; medians of wall-clock queries/s and of CPU per query, this process's and the node's
(from ``/proc``, for a node this script started). On a shared 2-core machine both move with
other work: compare ways within one run, not runs with each other.
Results go to ``<out>/elasticsearch.json``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and this file would shadow the
# `elasticsearch` client package: drop the folder, put the repository there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


beir = _load("bench_beir", REPO / "bench" / "beir.py")  # `beir` may also be a pip package
es_node = _load("es_node", REPO / "tests" / "es_node.py")

from auditor.backends import BackendError, SearchResult  # noqa: E402
from auditor.backends.elasticsearch import (  # noqa: E402
    ElasticsearchBackend,
    ElasticsearchOptions,
)
from auditor.backends.embedded import content_hash  # noqa: E402
from auditor.backends.es_index import embed_text  # noqa: E402
from auditor.backends.es_query import bm25_query, common, knn  # noqa: E402
from auditor.config import AuditSettings  # noqa: E402
from auditor.corpus_reader import read_corpus  # noqa: E402
from auditor.credentials import display_url  # noqa: E402
from auditor.embed import DIM, MINILM_ID, Encoder, load_encoder  # noqa: E402
from auditor.metrics import Qrels, evaluate, means, parse_metric  # noqa: E402
from auditor.records import Chunk, LogRecord  # noqa: E402

DEPTH, BATCH, METRICS, REFERENCE = beir.DEPTH, beir.BATCH, beir.METRICS, beir.REFERENCE
TOLERANCE = 0.02  # the issue: where analysis matches, stay within 0.02
# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (also Elasticsearch's _english_)
ENGLISH_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with"))
APOSTROPHES = ("'", "\u2019", "\uff07")  # Lucene's EnglishPossessiveFilter


def _multi_match(kind: str, **options: Any) -> str:
    return json.dumps({"query": {"multi_match": {
        "query": "{{query}}", "fields": ["title", "text"], "type": kind, **options}}})


@dataclass(frozen=True)
class Run:
    """One replay: a mode (and request template) on the standard or english-emulated index."""

    label: str
    mode: str
    index: str
    request: str
    reference: str  # which published figure it stands next to: bm25 or dense
    template: str | None = None


BEIR_QUERY = _multi_match("best_fields", tie_breaker=0.5)  # beir-cellar/beir's lexical search
RUNS = (
    Run("ES bm25", "bm25", "standard", "multi_match best_fields (the backend's)", "bm25"),
    Run("ES bm25, BEIR query", "template", "standard", "best_fields, tie_breaker 0.5", "bm25",
        BEIR_QUERY),
    Run("ES bm25, BEIR query, english emulated", "template", "english",
        "best_fields, tie_breaker 0.5", "bm25", BEIR_QUERY),
    Run("ES bm25, most_fields, english emulated", "template", "english",
        "most_fields (title + text scores summed)", "bm25", _multi_match("most_fields")),
    Run("ES knn (HNSW)", "dense", "standard", "knn k=100, num_candidates=200", "dense"),
    Run("ES exact kNN (flat)", "exact", "standard", "knn on the flat-indexed copy", "dense"),
)
# (our run, what it is compared with, gate): the gated pairs have the same analysis or model
CHECKS = (
    ("ES knn (HNSW)", "MTEB all-MiniLM-L6-v2", True),
    ("ES bm25", "embedded bm25 (no stemming)", True),
    ("ES bm25, BEIR query, english emulated", "BEIR paper", False),
    ("ES bm25, most_fields, english emulated", "BEIR paper", False),
)
WAYS = ("msearch", "msearch_one_batch_at_a_time", "single_search")
THROUGHPUT_QUERIES = 1000  # the test queries, cycled to at least this many per timed sample


class CachedEncoder:
    """MiniLM vectors by exact text: bench/beir.py's cached corpus vectors, the real model
    (memoised) for anything else, such as queries."""

    model_id, dim = MINILM_ID, DIM

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.cached = self.encoded = 0

    @property
    def model(self) -> Encoder:
        return load_encoder("minilm")  # loaded on first use (seconds), then kept

    def load(self, directory: Path, chunks: list[Chunk]) -> str:
        """Adopt the vectors in ``directory`` if they are this corpus, model and text."""
        manifest_path = directory / "manifest.json"
        if not (manifest_path.is_file() and (directory / "embeddings.npy").is_file()):
            return f"no cached vectors in {directory}: embedding the corpus (minutes)"
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("model_id") != self.model_id:
            return f"{directory} holds {manifest.get('model_id')} vectors: embedding the corpus"
        if manifest.get("content_hash") != content_hash(chunks):
            return f"{directory} was built from another corpus: embedding the corpus"
        rows = [Chunk.model_validate_json(line)
                for line in (directory / "chunks.jsonl").read_text().splitlines()]
        matrix = np.load(directory / "embeddings.npy")
        texts = [embed_text(chunk) for chunk in rows]
        sample = texts[:: max(1, len(texts) // 8)][:8]
        fresh = self.model.encode(sample)
        cached = matrix[[texts.index(text) for text in sample]]
        worst = float(np.max(np.abs(fresh - cached)))
        if worst > 1e-4:
            return (f"cached vectors in {directory} differ from the model's by {worst:.1e} on "
                    "the same text: embedding the corpus")
        self.vectors.update(zip(texts, matrix, strict=True))
        return f"{len(rows):,} cached vectors from {directory} (max |diff| {worst:.1e} on 8)"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            self.vectors.update(zip(missing, self.model.encode(missing), strict=True))
        self.encoded += len(missing)
        self.cached += len(texts) - len(missing)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vectors[text] for text in texts])


# english analysis, emulated ----------------------------------------------------------------
def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences (y after a consonant is a vowel)."""
    vowel: list[bool] = []
    for i, letter in enumerate(stem):
        vowel.append(letter in "aeiou" or (letter == "y" and i > 0 and not vowel[i - 1]))
    return sum(a and not b for a, b in zip(vowel, vowel[1:], strict=False))


def porter(words: list[str]) -> list[str]:
    """Close to Lucene's PorterStemFilter: Snowball's original Porter, plus two of the later
    revisions Lucene follows (words of one or two letters stay as they are; ``-logi`` with
    m > 0 before it becomes ``-log``). Lucene's ``-bli`` → ``-ble`` is not copied."""
    import Stemmer

    stems = Stemmer.Stemmer("porter").stemWords(words)
    return [word if len(word) <= 2
            else stem[:-1] if stem.endswith("logi") and _measure(stem[:-4]) > 0 else stem
            for word, stem in zip(words, stems, strict=True)]


def english_terms(tokens: list[str]) -> str:
    """Standard-analyzer tokens → what Lucene's ``english`` analyzer would index, joined by
    spaces (the standard analyzer reads them back as the same terms, but for a stem that ends
    in a period: ``u.s`` → ``u.`` → ``u``)."""
    kept = []
    for token in tokens:
        if len(token) >= 2 and token[-2] in APOSTROPHES and token[-1] in "sS":
            token = token[:-2]
        if token and token not in ENGLISH_STOP:
            kept.append(token)
    return " ".join(porter(kept))


def english_emulated(backend: ElasticsearchBackend, chunks: list[Chunk],
                     queries: list[str]) -> tuple[list[Chunk], list[str], int]:
    """Chunks and queries pre-analyzed the english way; and how many of 200 sampled texts
    the standard analyzer reads back as other terms."""
    titles = backend.analyze([c.title for c in chunks], "title")
    texts = backend.analyze([c.text for c in chunks], "text")
    emulated = [chunk.model_copy(update={"title": english_terms(title),
                                         "text": english_terms(text)})
                for chunk, title, text in zip(chunks, titles, texts, strict=True)]
    analyzed = [english_terms(tokens) for tokens in backend.analyze(queries, "text")]
    sample = [chunk.text for chunk in emulated[:: max(1, len(emulated) // 200)]]
    unstable = sum(" ".join(again) != text
                   for text, again in zip(sample, backend.analyze(sample, "text"), strict=True))
    return emulated, analyzed, unstable


# replay -------------------------------------------------------------------------------------
def score(records: list[LogRecord], results: list[SearchResult], qrels: Qrels) -> dict[str, Any]:
    hit_query, hit_doc = [], []
    for record, result in zip(records, results, strict=True):
        hit_query += [record.query_id] * len(result.hits)
        hit_doc += [hit.doc_id for hit in result.hits]
    values = evaluate([r.query_id for r in records], hit_query, hit_doc, qrels,
                      [parse_metric(m) for m in METRICS])
    averaged = means(values)
    out: dict[str, Any] = {metric: averaged[metric].value for metric in METRICS}
    out["queries_evaluated"] = averaged[METRICS[0]].n
    out["empty_results"] = sum(not r.hits for r in results)
    out["errors"] = sum(r.error is not None for r in results)
    return out


def one_by_one(backend: ElasticsearchBackend, encoder: Encoder, queries: list[str],
               mode: str) -> list[SearchResult]:
    """One ``search`` per query, in turn, with the body ``search_many`` would send (built and
    parsed as the backend does (``es_query`` and its private parser), so that both do the
    same work)."""
    vectors = encoder.encode(queries).tolist() if mode == "dense" else []
    layout = backend.layout
    shared = common(layout.fields, DEPTH)
    results = []
    for row, query in enumerate(queries):
        if mode == "bm25":
            body = {"query": bm25_query(query, layout.lexical_fields), **shared}
        else:
            body = {"knn": knn(layout.fields["vector"], vectors[row], DEPTH), **shared}
        answer = backend.client.search(index=backend.index, **body).body
        results.append(backend._result(answer, mode))
    return results


def node_cpu(pid: int | None) -> Callable[[], float]:
    """CPU seconds the local node's process has used so far (``/proc``: ``_nodes/stats`` only
    refreshes once a second); NaN when the node is not a local process we know."""
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.is_file():
        return lambda: float("nan")
    tick = os.sysconf("SC_CLK_TCK")

    def used() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    return used


def throughput(backend: ElasticsearchBackend, serial: ElasticsearchBackend, encoder: Encoder,
               queries: list[str], mode: str, repeats: int,
               node_seconds: Callable[[], float]) -> dict[str, Any]:
    """Wall-clock queries/s (what the issue asks; moves with other load on a shared machine)
    and CPU per query, ours and the node's (much steadier), for each of WAYS."""
    passes = -(-THROUGHPUT_QUERIES // len(queries))  # at least 1,000 queries a sample
    calls: dict[str, Callable[[], list[SearchResult]]] = dict(zip(WAYS, (
        lambda: backend.search_many(queries, mode, DEPTH),  # type: ignore[arg-type]
        lambda: serial.search_many(queries, mode, DEPTH),  # type: ignore[arg-type]
        lambda: one_by_one(serial, encoder, queries, mode),
    ), strict=True))
    rankings = {way: [[hit.chunk_id for hit in r.hits] for r in call()]  # warm-up
                for way, call in calls.items()}
    samples: dict[str, list[np.ndarray]] = {way: [] for way in WAYS}
    gc.collect()
    gc.freeze()  # the corpus and vectors held here: no full collection walks them mid-sample
    for _ in range(repeats):
        # the ways take turns pass by pass, so that a burst of other work hits all of them
        spent = {way: np.zeros(3) for way in WAYS}  # wall s, our CPU s, node CPU s
        for _ in range(passes):
            for way, call in calls.items():
                before = np.array([time.perf_counter(), time.process_time(), node_seconds()])
                call()
                spent[way] += np.array(
                    [time.perf_counter(), time.process_time(), node_seconds()]) - before
        for way in WAYS:
            samples[way].append(spent[way])
    gc.unfreeze()
    replayed = queries * passes
    out: dict[str, Any] = {"mode": mode, "queries": len(replayed), "repeats": repeats}
    for way in WAYS:
        wall, cpu, node = np.median(np.array(samples[way]), axis=0)
        out[way] = {"seconds": [round(float(sample[0]), 3) for sample in samples[way]],
                    "queries_per_second": round(len(replayed) / wall, 1),
                    "client_cpu_ms_per_query": round(1000 * cpu / len(replayed), 3),
                    "node_cpu_ms_per_query": None if np.isnan(node)
                    else round(1000 * node / len(replayed), 3)}
    single = out["single_search"]
    for way in WAYS[:2]:
        out[f"{way}_vs_single"] = round(out[way]["queries_per_second"]
                                        / single["queries_per_second"], 2)
        if single["node_cpu_ms_per_query"] is not None:
            out[f"{way}_node_cpu_saving_vs_single"] = round(
                single["node_cpu_ms_per_query"] / out[way]["node_cpu_ms_per_query"], 2)
    out["rankings_differing_from_msearch"] = {
        way: sum(a != b for a, b in zip(rankings["msearch"], rankings[way], strict=True))
        for way in WAYS[1:]}
    return out


def settings_for(url: str, index: str, **extra: Any) -> ElasticsearchOptions:
    return ElasticsearchOptions.from_settings(
        AuditSettings(es_url=url, es_index=index, batch_size=BATCH, depth=DEPTH, **extra))


def run_dataset(name: str, folder: Path, url: str, encoder: CachedEncoder, index_root: Path,
                repeats: int, node_pid: int | None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    records, qrel_rows = beir.load_split(folder)
    qrels = Qrels.from_rows([(q.query_id, q.doc_id, q.grade) for q in qrel_rows])
    queries = [r.query for r in records]
    chunks = list(read_corpus(folder))
    notes = [encoder.load(index_root / f"{name}-english", chunks)]
    print(f"  vectors: {notes[0]}", flush=True)
    indices = {"standard": f"bench-{name}", "english": f"bench-{name}-english-emulated"}
    built: dict[str, float] = {}
    opened: list[ElasticsearchBackend] = []
    rows: list[dict[str, Any]] = []
    speed: list[dict[str, Any]] = []
    try:
        began = time.perf_counter()
        backend = ElasticsearchBackend.build(settings_for(url, indices["standard"]), chunks,
                                             encoder)
        opened.append(backend)
        built["standard"] = time.perf_counter() - began
        print(f"  indexed {len(chunks):,} docs into {backend.index} in {built['standard']:.1f}s "
              f"(Elasticsearch {backend.node.version})", flush=True)
        began = time.perf_counter()
        emulated, analyzed, unstable = english_emulated(backend, chunks, queries)
        opened.append(ElasticsearchBackend.build(settings_for(url, indices["english"]),
                                                 emulated, None))
        built["english"] = time.perf_counter() - began
        if unstable:
            notes.append(f"{unstable} of 200 english-emulated texts read back other terms "
                         "(stems that end in a period, e.g. 'u.s' -> 'u.' -> 'u')")
        encoder.encode(queries)  # the model's time is not replay time
        for run in RUNS:
            each = ElasticsearchBackend(settings_for(url, indices[run.index],
                                                     es_template=run.template), encoder)
            opened.append(each)
            texts = analyzed if run.index == "english" else queries
            began = time.perf_counter()
            results = each.search_many(texts, run.mode, DEPTH)  # type: ignore[arg-type]
            seconds = time.perf_counter() - began
            row = {"dataset": name, "run": run.label, "mode": run.mode, "index": run.index,
                   "request": run.request, "queries": len(records), "corpus_docs": len(chunks),
                   "index_build_seconds": round(built[run.index], 1),
                   "replay_seconds": round(seconds, 3), **score(records, results, qrels),
                   "reference": REFERENCE[(name, run.reference)]}
            rows.append(row)
            print(f"  {run.label:42} nDCG@10 {row['ndcg@10']:.4f}  R@100 "
                  f"{row['recall@100']:.4f}  ({row['errors']} errors, "
                  f"{row['empty_results']} empty)", flush=True)
        serial = ElasticsearchBackend(settings_for(url, indices["standard"], es_concurrency=1),
                                      encoder)
        opened.append(serial)
        for mode in ("bm25", "dense"):
            speed.append({"dataset": name, **throughput(backend, serial, encoder, queries, mode,
                                                      repeats, node_cpu(node_pid))})
            done = speed[-1]
            print(f"  throughput {mode:5}: " + ", ".join(
                f"{way} {done[way]['queries_per_second']:,.0f} q/s" for way in WAYS), flush=True)
    finally:
        for index in indices.values() if opened else ():
            try:
                opened[0].client.options(ignore_status=404).indices.delete(index=index)
            except Exception as exc:  # the node may be gone: the first error matters more
                print(f"warning: could not delete index {index}: {exc}", file=sys.stderr)
        for each in opened:
            each.close()
    return rows, speed, notes


# checks and output -----------------------------------------------------------------------
def embedded_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text())["rows"]


def checks(rows: list[dict[str, Any]], embedded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair of CHECKS, per dataset and metric: is the difference within TOLERANCE?"""
    ours = {(r["dataset"], r["run"]): r for r in rows}
    theirs = {(r["dataset"], f"embedded {r['variant']}"): r for r in embedded}
    found = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        theirs[(dataset, "MTEB all-MiniLM-L6-v2")] = REFERENCE[(dataset, "dense")]
        theirs[(dataset, "BEIR paper")] = REFERENCE[(dataset, "bm25")]
        for run, other, gate in CHECKS:
            mine, reference = ours.get((dataset, run)), theirs.get((dataset, other))
            if mine is None or reference is None:
                continue
            for metric in METRICS:
                diff = mine[metric] - reference[metric]
                found.append({"dataset": dataset, "run": run, "compared_with": other,
                              "metric": metric, "ours": mine[metric],
                              "theirs": reference[metric], "diff": diff,
                              "within": abs(diff) <= TOLERANCE, "gate": gate,
                              "reference_verified": reference.get("recall@100_verified", True)
                              or metric != "recall@100"})
    return found


def print_tables(rows: list[dict[str, Any]], embedded: list[dict[str, Any]],
                 found: list[dict[str, Any]], speed: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="BEIR test splits, document level, depth 100 (diff = ours - published)")
    for header in ("dataset", "run", "nDCG@10", "published", "diff", "R@100", "published",
                   "diff", "queries", "empty"):
        table.add_column(header, justify="left" if header in ("dataset", "run") else "right")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for row in [r for r in rows if r["dataset"] == dataset] + [
                {**r, "run": f"embedded {r['variant']}"} for r in embedded
                if r["dataset"] == dataset]:
            ref = row["reference"]
            dagger = "" if ref["recall@100_verified"] else " †"
            table.add_row(dataset, row["run"], f"{row['ndcg@10']:.4f}", f"{ref['ndcg@10']:g}",
                          f"{row['ndcg@10'] - ref['ndcg@10']:+.4f}", f"{row['recall@100']:.4f}",
                          f"{ref['recall@100']:g}{dagger}",
                          f"{row['recall@100'] - ref['recall@100']:+.4f}{dagger}",
                          f"{row['queries_evaluated']}/{row['queries']}",
                          str(row["empty_results"]))
    console.print(table)
    table = Table(title=f"Comparisons: within {TOLERANCE}? (gated: same analysis or same model)")
    for header in ("dataset", "ours", "compared with", "metric", "ours", "theirs", "diff",
                   "within"):
        table.add_column(header)
    for check in found:
        table.add_row(check["dataset"], check["run"], check["compared_with"], check["metric"],
                      f"{check['ours']:.4f}", f"{check['theirs']:.4f}", f"{check['diff']:+.4f}",
                      ("yes" if check["within"] else "NO")
                      + ("" if check["gate"] else " (not gated)")
                      + ("" if check["reference_verified"] else " †"))
    console.print(table)
    table = Table(title="Replay throughput, same run, medians: queries/s (CPU ms per query: "
                  "this process + the node)")
    for header in ("dataset", "mode", "queries", "_msearch, 2 batches at a time",
                   "_msearch, 1 batch at a time", "one _search per query", "_msearch / single"):
        table.add_column(header, justify="left" if header in ("dataset", "mode") else "right")
    for done in speed:
        node = done.get("msearch_node_cpu_saving_vs_single")
        table.add_row(done["dataset"], done["mode"], str(done["queries"]), *(
            f"{done[w]['queries_per_second']:,.0f} ({done[w]['client_cpu_ms_per_query']:.2f}"
            f" + {done[w]['node_cpu_ms_per_query'] or float('nan'):.2f})" for w in WAYS),
            f"{done['msearch_vs_single']:.2f}x" + (f" (node CPU {node:.2f}x)" if node else ""))
    console.print(table)
    console.print("† BM25 recall@100 references are unverified (../shared/data/README.md).")


def our_processes(run_dir: str) -> list[int]:
    """Pids whose command line carries the node's run directory (scripts/elasticsearch.sh)."""
    marker = f"-Djava.io.tmpdir={run_dir}/tmp".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes().replace(b"\0", b" "):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=beir.DEFAULT_DATA,
                        help=f"folder holding the BEIR datasets (default {beir.DEFAULT_DATA})")
    parser.add_argument("--datasets", default="scifact,nfcorpus")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of throughput")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if (d, "bm25") not in REFERENCE]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}: use scifact, nfcorpus")
    if not args.data.is_dir():
        print(f"error: no BEIR data at {args.data}: pass --data with the folder that holds "
              "scifact/ and nfcorpus/ (see ../shared/data/README.md)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    os.environ.setdefault("AUDITOR_ES_STATE", str(REPO / ".auditor" / "es-bench"))
    state = Path(os.environ["AUDITOR_ES_STATE"])
    external = bool(os.environ.get("AUDITOR_ES_URL"))
    running_before = not external and es_node._already_running()
    encoder = CachedEncoder()
    rows: list[dict[str, Any]] = []
    speed: list[dict[str, Any]] = []
    notes: list[str] = []
    run_dir = ""
    load = {"before": os.getloadavg()}
    try:
        with es_node.elasticsearch_url() as url:
            run_dir = "" if external else (state / "run_dir").read_text().strip()
            node_pid = None if external else int((state / "pid").read_text())
            print(f"Elasticsearch at {display_url(url)}"
                  f"{' (AUDITOR_ES_URL)' if external else ''}", flush=True)
            for name in datasets:
                print(f"{name}:", flush=True)
                found = run_dataset(name, args.data / name, url, encoder,
                                    args.out / "index", args.repeats, node_pid)
                rows += found[0]
                speed += found[1]
                notes += [f"{name}: {note}" for note in found[2]]
    except (beir.BenchError, BackendError, es_node.NodeUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        left = our_processes(run_dir) if run_dir and not running_before else []
        if left:
            print(f"warning: Elasticsearch processes {left} of {run_dir} are still running",
                  file=sys.stderr)
    load["after"] = os.getloadavg()
    embedded = embedded_rows(args.out / "beir.json")
    if not embedded:
        notes.append("no bench/results/beir.json: run bench/beir.py for the embedded rows")
    found_checks = checks(rows, embedded)
    print_tables(rows, embedded, found_checks, speed)
    for note in notes:
        print(f"note: {note}")
    result = {
        "setup": {
            "data": str(args.data.resolve()), "depth": DEPTH, "batch": BATCH, "level": "doc",
            "metrics": list(METRICS), "tolerance": TOLERANCE,
            "es_concurrency": AuditSettings.model_fields["es_concurrency"].default,
            "node": "AUDITOR_ES_URL" if external else (
                "reused, left running" if running_before else "started and stopped"),
            "node_processes_left": [] if external or running_before else our_processes(run_dir),
            "vectors": {"served_from_memory": encoder.cached,
                        "embedded_by_the_model": encoder.encoded},
            "cpu_count": os.cpu_count(), "load_average": load,
            "python": platform.python_version(),
            "seconds_total": round(time.perf_counter() - started, 1),
        },
        "rows": rows, "checks": found_checks, "throughput": speed, "notes": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "elasticsearch.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path} in {result['setup']['seconds_total']:.0f}s")
    failed = [c for c in found_checks if c["gate"] and not c["within"]]
    errors = sum(row["errors"] for row in rows)
    return 1 if failed or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
