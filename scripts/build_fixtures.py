#!/usr/bin/env python3
"""Build the small committed fixture slices in fixtures/ from the shared evaluation data.

Writes {scifact,hotpotqa}/{corpus.jsonl,log.jsonl,qrels.tsv} and bad_log.jsonl; deterministic
(fixed seeds, sorted iteration). fixtures/README.md explains selection, planted faults, licenses.

    python scripts/build_fixtures.py [--data ../shared/data] [--out fixtures]

--data defaults to <repo>/../shared/data and --out to <repo>/fixtures (<repo> = this file's ..).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import bm25s
import numpy as np
import Stemmer

Doc = dict[str, Any]
Qrels = dict[str, list[tuple[str, int]]]  # query id -> [(doc id, score)] in file order

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_START = datetime(2026, 11, 1, tzinfo=UTC)
SEEDS = {"scifact": 20261101, "hotpotqa": 20261102, "scifact-fill": 7}
SCIFACT_QUERIES, SCIFACT_DOCS, SCIFACT_HARD_NEGATIVES, SCIFACT_MAX_SENTENCES = 50, 300, 4, 3
HOTPOT_QUERIES, HOTPOT_TOP_K, SERVED_K = 100, 8, 10
HARD_NEGATIVE_POOL = 50  # BM25 hits searched for hard negatives (relevant ones are skipped)

PLANTED_SCIENCE = [
    "This effect was first described in a 1952 cohort from rural Norway.",
    "The same mechanism accounts for roughly 80% of cases in adolescents.",
    "Follow-up trials later confirmed the finding in over 12,000 patients across four continents.",
    "The pathway is conserved in all vertebrates, including zebrafish and lampreys.",
    "A single daily dose of vitamin D fully reverses this effect within two weeks.",
]
PLANTED_HISTORY = [
    "The town was briefly renamed during the Napoleonic occupation of 1807.",
    "Its founding charter is kept in the national archive in Lisbon.",
    "The building was designed by a pupil of Christopher Wren in 1741.",
    "The river forming its eastern border was the site of a treaty signed in 1653.",
    "It was the first settlement in the region to be connected by railway, in 1839.",
]


class Query(NamedTuple):
    """One selected question and the answer "production" generated for it."""

    query_id: str
    query: str
    answer: str
    cited: list[str]
    planted: list[str]


# Sentence boundary candidates: end punctuation (plus an optional closing quote/bracket), spaces.
BOUNDARY = re.compile(r"(?<=[.!?])([\"')\]]?)\s+(?=(\S+))")
# Words whose final period does not end a sentence. Deliberately short: the SciFact evidence
# indices follow an aggressive splitter (doc 5956380 splits at "encoding p. Lys27Met"), and a
# longer list (units such as "g.", initials) put more evidence indices on the wrong sentence.
NOT_SENTENCE_END = re.compile(r"(e\.g|i\.e|al|vs|cf|figs?)\.")
# Sentences may start lower-case with a gene-like token, e.g. "miR-193a", "iPSCs", "rim1".
GENE_LIKE = re.compile(r"[a-z]+[A-Z0-9]")


def split_sentences(text: str) -> list[str]:
    """Split an abstract into sentences (the corpus text is its sentences joined by spaces)."""
    sentences: list[str] = []
    start = 0
    for match in BOUNDARY.finditer(text):
        words = text[start : match.start()].split()
        prev = words[-1].lower() if words else ""
        nxt = match.group(2)
        if NOT_SENTENCE_END.fullmatch(prev):
            continue
        first = nxt.lstrip('(["')
        if not first or not (first[0].isupper() or first[0].isdigit() or GENE_LIKE.match(first)):
            continue
        sentences.append(text[start : match.start() + len(match.group(1))])
        start = match.end()
    sentences.append(text[start:])
    return sentences


def read_jsonl(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: Iterable[Doc]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\r\n").split("\t")
            qrels.setdefault(query_id, []).append((doc_id, int(score)))
    return qrels


def write_qrels(path: Path, qrels: Qrels, query_ids: Sequence[str]) -> int:
    rows = [f"{q}\t{d}\t{s}\n" for q in query_ids for d, s in qrels[q]]
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(rows), encoding="utf-8", newline="\n")
    return len(rows)


TOKENIZE: dict[str, Any] = dict(lower=True, stopwords="en", return_ids=False, show_progress=False)


class Bm25:
    """bm25s over fixed texts; ranks by (score desc, id asc) and keeps only matching docs."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], stem: bool) -> None:
        self.ids = list(ids)
        self.stemmer = Stemmer.Stemmer("english") if stem else None
        self.model = bm25s.BM25()
        self.model.index(self._tokens(texts), show_progress=False)

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        return bm25s.tokenize(list(texts), stemmer=self.stemmer, **TOKENIZE)

    def rank(self, query: str, k: int) -> list[tuple[str, float]]:
        tokens = self._tokens([query])[0]
        if not tokens:
            return []
        scores = np.asarray(self.model.get_scores(tokens), dtype=np.float64)
        order = sorted(np.flatnonzero(scores > 0), key=lambda j: (-scores[j], self.ids[j]))
        return [(self.ids[j], float(scores[j])) for j in order[:k]]


def build_log(
    dataset: str, queries: list[Query], corpus: list[Doc], stats: dict[str, int]
) -> list[Doc]:
    """Attach timestamps, served lists (title-only BM25 = "production"), latency and metadata."""
    served_index = Bm25([d["_id"] for d in corpus], [d["title"] for d in corpus], stem=False)
    rng = random.Random(SEEDS[dataset])
    records = []
    for i, q in enumerate(queries):
        served = served_index.rank(q.query, SERVED_K)
        planted = list(q.planted)
        if i % 7 == 3 and served:
            served = served[1:]  # simulated production bug: the top hit never reached the prompt
            planted.append("served_top_hit_dropped")
        stats["served_short"] += len(served) < SERVED_K
        latency = round(rng.uniform(20, 180), 1)
        metadata: dict[str, Any] = {
            "tenant": rng.choice(["acme", "globex", "initech"]),
            "app_version": rng.choice(["1.4.0", "1.5.0"]),
            "channel": rng.choice(["web", "api"]),
            "dataset": dataset,
        }
        if planted:
            metadata["planted"] = planted
        records.append(
            {
                "query_id": q.query_id,
                "query": q.query,
                "timestamp": (LOG_START + timedelta(minutes=17 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "retrieved": [
                    {"id": doc_id, "rank": r, "score": round(score, 4)}
                    for r, (doc_id, score) in enumerate(served, start=1)
                ],
                "answer": q.answer,
                "cited": q.cited,
                "latency_ms": latency,
                "metadata": metadata,
            }
        )
    return records


def plant(i: int, answer: str, statements: list[str], planted: list[str]) -> str:
    if i % 5 != 4:
        return answer
    planted.append("ungrounded_sentence")
    return f"{answer} {statements[(i // 5) % len(statements)]}"


def full_text_index(corpus: list[Doc]) -> Bm25:
    """The distractor miner: title + text, stemmed (not the served retriever)."""
    return Bm25([d["_id"] for d in corpus], [f"{d['title']} {d['text']}" for d in corpus], True)


def write_slice(
    out: Path,
    dataset: str,
    corpus: list[Doc],
    queries: list[Query],
    qrels: Qrels,
    stats: dict[str, int],
) -> dict[str, int]:
    """Write corpus.jsonl (BEIR fields only), log.jsonl and qrels.tsv of one slice."""
    beir = [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in corpus]
    write_jsonl(out / "corpus.jsonl", beir)
    write_jsonl(out / "log.jsonl", build_log(dataset, queries, beir, stats))
    stats["qrels_rows"] = write_qrels(out / "qrels.tsv", qrels, [q.query_id for q in queries])
    stats.update(queries=len(queries), docs=len(beir))
    return stats


def build_scifact(src: Path, out: Path) -> dict[str, int]:
    stats = {"evidence_refs": 0, "skipped_out_of_range": 0, "served_short": 0}
    corpus = read_jsonl(src / "corpus.jsonl")
    by_id = {d["_id"]: d for d in corpus}
    claims = {q["_id"]: q for q in read_jsonl(src / "queries.jsonl")}
    qrels = read_qrels(src / "qrels" / "test.tsv")
    selected = [q for q in sorted(qrels, key=int) if claims[q]["metadata"]][:SCIFACT_QUERIES]

    keep = {d for q in selected for d, _ in qrels[q]}
    full_index = full_text_index(corpus)
    for q in selected:
        relevant = {d for d, _ in qrels[q]}
        ranked = full_index.rank(claims[q]["text"], HARD_NEGATIVE_POOL)
        hits = [d for d, _ in ranked if d not in relevant]
        keep.update(hits[:SCIFACT_HARD_NEGATIVES])
    stats["relevant_plus_hard_negatives"] = len(keep)
    others = sorted(set(by_id) - keep, key=int)
    keep.update(random.Random(SEEDS["scifact-fill"]).sample(others, SCIFACT_DOCS - len(keep)))

    queries: list[Query] = []
    for i, q in enumerate(selected):
        used: list[tuple[str, str]] = []
        for doc_id, evidence in claims[q]["metadata"].items():
            sentences = split_sentences(by_id[doc_id]["text"])
            for entry in evidence:
                for idx in entry["sentences"]:
                    stats["evidence_refs"] += 1
                    if idx >= len(sentences):
                        stats["skipped_out_of_range"] += 1
                    elif (doc_id, sentences[idx]) not in used:
                        used.append((doc_id, sentences[idx]))
        used = used[:SCIFACT_MAX_SENTENCES]
        planted: list[str] = []
        answer = plant(i, " ".join(s for _, s in used), PLANTED_SCIENCE, planted)
        cited = list(dict.fromkeys(d for d, _ in used))
        queries.append(Query(q, claims[q]["text"], answer, cited, planted))

    slice_corpus = [by_id[d] for d in sorted(keep, key=int)]
    return write_slice(out, "scifact", slice_corpus, queries, qrels, stats)


def build_hotpotqa(src: Path, out: Path) -> dict[str, int]:
    stats = {"sf_refs": 0, "skipped_out_of_range": 0, "served_short": 0}
    corpus = read_jsonl(src / "corpus.jsonl")
    by_id = {d["_id"]: d for d in corpus}
    facts = {f["_id"]: f for f in read_jsonl(src / "supporting_facts.jsonl")}
    qrels = read_qrels(src / "qrels" / "dev.tsv")
    with_sf = [q for q in read_jsonl(src / "queries.jsonl") if q["sentence_level_sf"]]
    selected = [q for q in with_sf if facts[q["_id"]]["supporting_facts"] is not None]
    selected = selected[:HOTPOT_QUERIES]

    full_index = full_text_index(corpus)
    keep: set[str] = set()
    queries: list[Query] = []
    for i, q in enumerate(selected):
        keep.update(d for d, _ in qrels[q["_id"]])
        keep.update(d for d, _ in full_index.rank(q["text"], HOTPOT_TOP_K))
        sentences = []
        for title, idx in facts[q["_id"]]["supporting_facts"]:
            stats["sf_refs"] += 1
            if idx >= len(by_id[title]["sentences"]):
                stats["skipped_out_of_range"] += 1
            else:
                sentences.append(by_id[title]["sentences"][idx].strip())
        sentences.append(f"The answer is {q['answer']}.")
        planted: list[str] = []
        answer = plant(i, " ".join(sentences), PLANTED_HISTORY, planted)
        cited = list(facts[q["_id"]]["supporting_titles"])
        queries.append(Query(q["_id"], q["text"], answer, cited, planted))

    slice_corpus = [by_id[d] for d in sorted(keep)]
    return write_slice(out, "hotpotqa", slice_corpus, queries, qrels, stats)


def build_bad_log(scifact_log: Path, out: Path) -> None:
    """8 good records (bad-ok-1..8) with 5 malformed lines at fixed positions; see README."""
    base = read_jsonl(scifact_log)
    good = [dict(r, query_id=f"bad-ok-{n}") for n, r in enumerate(base[:8], start=1)]
    missing_query = {k: v for k, v in base[8].items() if k != "query"}
    missing_query["query_id"] = "bad-missing-query"
    retrieved_str = dict(
        base[9],
        query_id="bad-retrieved-string",
        retrieved=",".join(h["id"] for h in base[9]["retrieved"]),
    )
    duplicate = dict(base[10], query_id="bad-ok-2")
    latency_text = dict(base[11], query_id="bad-latency-text", latency_ms="fast")
    truncated = json.dumps(dict(base[12], query_id="bad-truncated"), ensure_ascii=False)[:90]
    # 1-based line number -> malformed line; every other line is the next good record.
    bad = {3: truncated, 5: missing_query, 8: retrieved_str, 10: duplicate, 12: latency_text}
    good_iter = iter(good)
    rows = [bad[n] if n in bad else next(good_iter) for n in range(1, 14)]
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    (out / "bad_log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data, out = REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "fixtures"
    parser.add_argument("--data", type=Path, default=data, help=f"source data (default {data})")
    parser.add_argument("--out", type=Path, default=out, help=f"output dir (default {out})")
    args = parser.parse_args()
    for name, build in (("scifact", build_scifact), ("hotpotqa", build_hotpotqa)):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        stats = build(args.data / name, out)
        print(name, json.dumps(stats, sort_keys=True))
    build_bad_log(args.out / "scifact" / "log.jsonl", args.out)
    print("bad_log.jsonl: 13 lines (8 good, 5 malformed)")


if __name__ == "__main__":
    main()
