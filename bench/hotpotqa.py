"""HotpotQA: every question needs two documents. Does the auditor see the scatter?

    .venv/bin/python bench/hotpotqa.py [--data ../shared/data] [--limit N] [--mode hybrid]
                                       [--out bench/results] [--keep DIR]

The 169 dev questions with sentence-level supporting facts become a log: the question as
``query``, the supporting-fact sentences (``corpus.sentences[i]``, stripped, in fact order,
joined by one space) as ``answer``, no served list. Judgments are ``qrels/dev.tsv`` (the
two gold paragraphs of each question). The whole corpus (4,858 paragraphs, one chunk per
paragraph) is indexed with the embedded backend and MiniLM, cached under
``<out>/index/hotpotqa`` exactly as ``bench/beir.py`` caches its indices.

One ``run_audit`` with ``diagnose_k = 1`` (so ``scattered`` is judged at k = 1), ablations
on, cut-offs 1, 2, 5, 10 and depth 100. The issue's checks:

- judged scatter (relevant documents per question) is 2 for every question;
- evidence scatter (``scatter_docs``: least documents whose chunks support every
  supportable answer sentence) is at least 2 for at least 90% of the questions;
- ``scattered`` fires at k = 1 (read from the stored diagnoses), and, recomputed from the
  stored scatter with the product's own rule, at k = 2 and k = 10.

Where evidence scatter is below 2 the script says why, per question: the sentences of
one gold paragraph are also supported by the other one (or by a third paragraph), a
sentence is supported nowhere, or the splitter left one paragraph without a factual
sentence. Results: ``<out>/hotpotqa.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from beir import open_index  # noqa: E402  (bench/beir.py: the shared index cache)

from auditor.anchors import missing_anchors  # noqa: E402
from auditor.audit import run_audit  # noqa: E402
from auditor.cases import QueryCase, Ranking, Thresholds  # noqa: E402
from auditor.config import AuditSettings  # noqa: E402
from auditor.corpus_reader import read_corpus  # noqa: E402
from auditor.diagnose import RULE_FUNCTIONS, Facts  # noqa: E402
from auditor.sentences import TOKEN, content_words  # noqa: E402
from auditor.store import Store  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
KS = [1, 2, 5, 10]
DEPTH = 100
TARGET = 0.90  # share of questions whose evidence scatter must be >= 2
EXAMPLES = 8  # examples kept per failure kind
LACKING_TARGET = 5  # foreign support pairs lacking a number or name (issue 15)


class BenchError(Exception):
    """The benchmark cannot run; the message says what to do."""


# inputs -----------------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BenchError(f"{path} is missing: pass --data with the folder holding hotpotqa/")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_questions(folder: Path, limit: int | None) -> tuple[list[dict[str, Any]], dict]:
    """Questions with sentence-level facts (queries.jsonl order), answers built from facts.

    Each question carries ``facts``: ``{title, index, start, end}`` with the fact's span in
    the answer, so traced sentences can be mapped back to the paragraph they came from.
    """
    sentences = {row["_id"]: row["sentences"] for row in _jsonl(folder / "corpus.jsonl")}
    facts = {row["_id"]: row for row in _jsonl(folder / "supporting_facts.jsonl")}
    questions = []
    for query in _jsonl(folder / "queries.jsonl"):
        source = facts.get(query["_id"])
        if not query.get("sentence_level_sf") or not source or not source["supporting_facts"]:
            continue
        parts, spans, cursor = [], [], 0
        for title, index in source["supporting_facts"]:
            text = sentences[title][index].strip()
            if parts:
                cursor += 1  # the joining space
            spans.append({"title": title, "index": index, "start": cursor,
                          "end": cursor + len(text)})
            parts.append(text)
            cursor += len(text)
        questions.append({
            "query_id": query["_id"], "query": query["text"], "type": query.get("type"),
            "answer": " ".join(parts), "facts": spans,
            "gold": sorted(source["supporting_titles"]),
        })
    total = len(questions)
    return questions[:limit] if limit else questions, {"with_facts": total}


def write_inputs(questions: list[dict[str, Any]], qrels_source: Path, folder: Path
                 ) -> tuple[Path, Path]:
    """The log (no served list) and the judgments of the chosen questions."""
    log = folder / "log.jsonl"
    with log.open("w", encoding="utf-8") as handle:
        for q in questions:
            record = {"query_id": q["query_id"], "query": q["query"], "answer": q["answer"],
                      "metadata": {"dataset": "hotpotqa", "type": q["type"]}}
            handle.write(json.dumps(record) + "\n")
    wanted = {q["query_id"] for q in questions}
    qrels = folder / "qrels.tsv"
    with qrels_source.open(encoding="utf-8") as src, qrels.open("w", encoding="utf-8") as dst:
        rows = list(csv.reader(src, delimiter="\t"))
        dst.write("\t".join(rows[0]) + "\n")
        for row in rows[1:]:
            if row and row[0] in wanted:
                dst.write("\t".join(row) + "\n")
    return log, qrels


# reading the run back ---------------------------------------------------------------------
def read_run(store: Store, run_id: str) -> dict[str, Any]:
    with store.connect(read_only=True) as con:
        def rows(sql: str) -> list[tuple]:
            return con.execute(sql, [run_id]).fetchall()

        return {
            "metrics": rows("SELECT query_id, metric, value FROM metrics WHERE run_id = ?"),
            "judgments": rows("SELECT query_id, doc_id, grade FROM judgments "
                              "WHERE run_id = ?"),
            "sentences": rows("SELECT query_id, idx, text, start_char, end_char, status, "
                              "best_doc_id, best_score FROM sentences WHERE run_id = ? "
                              "ORDER BY query_id, idx"),
            "support": rows("SELECT query_id, idx, doc_id, max(score) FROM support "
                            "WHERE run_id = ? GROUP BY query_id, idx, doc_id"),
            "scatter": rows("SELECT query_id, level, size, approx, sources FROM scatter "
                            "WHERE run_id = ?"),
            "diagnoses": rows("SELECT query_id, cause, target_id FROM diagnoses "
                              "WHERE run_id = ?"),
            "run": rows("SELECT status, status_reason, counts FROM runs WHERE run_id = ?")[0],
        }


def scattered_at(k: int, scatter_docs: int | None, scatter_chunks: int | None,
                 limit: int) -> bool:
    """The product's ``scattered`` rule at cut-off ``k`` on stored scatter sizes."""
    case = QueryCase(query_id="q", query="", status="ok", hits=[], depth=DEPTH, mode="bm25",
                     level="doc", targets=[], silver=False, missing_targets=[], served=None,
                     replay_latency_ms=None, served_latency_ms=None, scatter_docs=scatter_docs,
                     scatter_chunks=scatter_chunks)
    facts = Facts(replayed=Ranking.of([], "doc"), ablations={}, missed=[], uncovered=[])
    return bool(RULE_FUNCTIONS["scattered"](case, Thresholds(k=k, scatter_limit=limit), facts))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def analyse(questions: list[dict[str, Any]], run: dict[str, Any], limit: int,
            texts: dict[str, str]) -> dict[str, Any]:
    ids = [q["query_id"] for q in questions]
    metric: dict[str, dict[str, float | None]] = {}
    for query_id, name, value in run["metrics"]:
        metric.setdefault(name, {})[query_id] = value
    relevant: dict[str, set[str]] = {q: set() for q in ids}
    for query_id, doc_id, grade in run["judgments"]:
        if grade >= 1:
            relevant[query_id].add(doc_id)
    judged = Counter(len(relevant[q]) for q in ids)
    fact_titles = Counter(len({f["title"] for f in q["facts"]}) for q in questions)

    scatter_docs = {q: metric.get("scatter_docs", {}).get(q) for q in ids}
    scatter_chunks = {q: metric.get("scatter_chunks", {}).get(q) for q in ids}
    evidence = Counter("none" if v is None else str(int(v)) for v in scatter_docs.values())
    at_least_two = [q for q in ids if (scatter_docs[q] or 0) >= 2]
    stored_scattered = {q for q, cause, _ in run["diagnoses"] if cause == "scattered"}
    recomputed = {
        k: [q for q in ids if scattered_at(
            k, _int(scatter_docs[q]), _int(scatter_chunks[q]), limit)] for k in (1, 2, 10)
    }
    causes = Counter(cause for _, cause, _ in run["diagnoses"])
    queries_by_cause = {c: len({q for q, cause, _ in run["diagnoses"] if cause == c})
                        for c in causes}

    sentences: dict[str, list[dict[str, Any]]] = {q: [] for q in ids}
    for query_id, idx, text, start, end, status, best_doc, best_score in run["sentences"]:
        sentences[query_id].append({"query_id": query_id, "idx": idx, "text": text,
                                    "start": start, "end": end,
                                    "status": status, "best_doc": best_doc,
                                    "best_score": best_score, "docs": {}})
    by_key = {(q, s["idx"]): s for q, group in sentences.items() for s in group}
    for query_id, idx, doc_id, score in run["support"]:
        if (query_id, idx) in by_key:
            by_key[(query_id, idx)]["docs"][doc_id] = score
    question = {q["query_id"]: q for q in questions}
    for query_id, group in sentences.items():
        for s in group:
            s["titles"] = sorted({f["title"] for f in question[query_id]["facts"]
                                  if f["start"] < s["end"] and s["start"] < f["end"]})

    n_facts = sum(len(q["facts"]) for q in questions)
    traced = [s for group in sentences.values() for s in group]
    grounded = [s for s in traced if s["status"] != "ungrounded"]
    own = [s for s in traced if any(t in s["docs"] for t in s["titles"])]
    best_is_own = [s for s in traced if s["best_doc"] in s["titles"]]
    crossed = [s for s in traced if set(s["docs"]) - set(s["titles"])]
    by_other_gold = [s for s in traced
                     if set(s["docs"]) & (set(question[s["query_id"]]["gold"]) - set(s["titles"]))]
    failures = explain_failures([q for q in ids if (scatter_docs[q] or 0) < 2], question,
                                sentences, run["scatter"])

    recall = {f"recall@{k}": _mean([v for v in metric.get(f"recall@{k}", {}).values()
                                    if v is not None]) for k in KS}
    index_cov = [v for v in metric.get("index_coverage", {}).values() if v is not None]
    n = len(ids)
    return {
        "questions": n,
        "judged_scatter": {"distribution": _sorted(judged), "all_two": judged == Counter({2: n}),
                           "fact_titles_distribution": _sorted(fact_titles)},
        "evidence_scatter": {
            "distribution": _sorted(evidence),
            "at_least_2": len(at_least_two), "share_at_least_2": len(at_least_two) / n,
            "target": TARGET, "target_met": len(at_least_two) / n >= TARGET,
            "approx": sum(1 for row in run["scatter"] if row[3]),
            "chunks_distribution": _sorted(Counter(
                "none" if v is None else str(int(v)) for v in scatter_chunks.values())),
        },
        "scattered": {
            "k1_stored": len(stored_scattered), "share_k1_stored": len(stored_scattered) / n,
            "k1_recomputed_agrees": set(recomputed[1]) == stored_scattered,
            **{f"k{k}_recomputed": len(v) for k, v in recomputed.items()},
            "scatter_limit": limit,
        },
        "coverage": {
            "supporting_facts": n_facts,
            "traced_sentences": len(traced),
            "sentences_supported_anywhere": len(grounded),
            "sentence_index_coverage": len(grounded) / len(traced) if traced else None,
            "mean_index_coverage": _mean(index_cov),
            "supported_by_own_paragraph": len(own),
            "best_support_is_own_paragraph": len(best_is_own),
            "also_supported_by_another_paragraph": len(crossed),
            "also_supported_by_the_other_gold_paragraph": len(by_other_gold),
        },
        "recall": recall,
        "causes": {c: {"rows": causes[c], "queries": queries_by_cause[c]}
                   for c in sorted(causes)},
        "failures": failures,
        "foreign_support": foreign_support(traced, texts),
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _sorted(counter: Counter) -> dict[str, int]:
    return {str(k): counter[k] for k in sorted(counter, key=lambda x: (str(x) == "none", str(x)))}


def explain_failures(failed: list[str], question: dict[str, dict[str, Any]],
                     sentences: dict[str, list[dict[str, Any]]], scatter: list[tuple]
                     ) -> dict[str, Any]:
    """Why a question's evidence scatter is below 2, one kind per question.

    - ``no_factual_sentence``: no traced sentence overlaps one gold paragraph's facts (the
      splitter merged them into a sentence of the other, or ``is_factual`` dropped them);
    - ``supported_nowhere``: a gold paragraph's sentences are all ungrounded;
    - ``covered_by_other_gold``: the one covering document is the other gold paragraph (its
      words also support the sentences taken from the first: lexical support);
    - ``covered_by_non_gold``: the one covering document is not a gold paragraph.
    """
    cover = {q: json.loads(sources) for q, level, _, _, sources in scatter if level == "doc"}
    kinds: Counter = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    for query_id in failed:
        q = question[query_id]
        group = sentences[query_id]
        titles_seen = {t for s in group for t in s["titles"]}
        grounded_titles = {t for s in group if s["status"] != "ungrounded" for t in s["titles"]}
        sources = cover.get(query_id, [])
        if set(q["gold"]) - titles_seen:
            kind = "no_factual_sentence"
        elif set(q["gold"]) - grounded_titles:
            kind = "supported_nowhere"
        elif sources and sources[0] in q["gold"]:
            kind = "covered_by_other_gold"
        else:
            kind = "covered_by_non_gold"
        kinds[kind] += 1
        if len(examples.setdefault(kind, [])) < EXAMPLES:
            examples[kind].append({
                "query_id": query_id, "query": q["query"], "gold": q["gold"], "cover": sources,
                "sentences": [{"text": s["text"], "from": s["titles"], "status": s["status"],
                               "best_doc": s["best_doc"], "best_score": round(s["best_score"], 4),
                               "supported_by": {d: round(v, 4) for d, v in
                                                sorted(s["docs"].items(), key=lambda x: -x[1])}}
                              for s in group],
            })
    return {"questions": len(failed), "kinds": dict(kinds.most_common()), "examples": examples}


def foreign_support(traced: list[dict[str, Any]], texts: dict[str, str]) -> dict[str, Any]:
    """Support of a fact sentence by a paragraph it was not taken from: which of the
    sentence's content words that paragraph lacks (a number, a name: a word the sentence
    writes capitalised, another word, or none) and, separately, which of its exact anchors
    (``auditor.anchors``: numbers, dates, names after normalisation). The issue's target
    counts pairs lacking a number or a name."""
    kinds: Counter = Counter()
    anchor_kinds: Counter = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    sentences = set()
    for s in traced:
        capitalised = {w for token in TOKEN.findall(s["text"]) if token[:1].isupper()
                       for w in content_words(token)}
        for doc, value in sorted(s["docs"].items()):
            if doc in s["titles"]:
                continue
            sentences.add((s["query_id"], s["idx"]))
            absent = sorted(set(content_words(s["text"])) - set(content_words(texts[doc])))
            kind = ("all_words_present" if not absent else
                    "lacks_a_number" if any(c.isdigit() for w in absent for c in w) else
                    "lacks_a_name" if capitalised & set(absent) else "lacks_another_word")
            kinds[kind] += 1
            lacking = missing_anchors(s["text"], texts[doc])
            anchor_kinds["lacks_an_anchor" if lacking else "holds_every_anchor"] += 1
            if len(examples.setdefault(kind, [])) < EXAMPLES:
                examples[kind].append({"sentence": s["text"], "from": s["titles"], "doc": doc,
                                       "score": round(value, 4), "absent": absent,
                                       "anchors_lacking": [a.text for a in lacking]})
    lacking_number_or_name = kinds["lacks_a_number"] + kinds["lacks_a_name"]
    return {"pairs": sum(kinds.values()), "sentences": len(sentences),
            "kinds": dict(kinds.most_common()), "anchors": dict(anchor_kinds.most_common()),
            "lacking_number_or_name": lacking_number_or_name,
            "target_lacking": LACKING_TARGET,
            "target_lacking_met": lacking_number_or_name <= LACKING_TARGET,
            "examples": examples}


# output -----------------------------------------------------------------------------------
def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    a = result["analysis"]
    n = a["questions"]
    ev, sc, cov = a["evidence_scatter"], a["scattered"], a["coverage"]
    table = Table(title=f"HotpotQA, {n} questions with sentence-level facts "
                        f"(mode {result['setup']['mode']}, doc level)")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    judged = a["judged_scatter"]["distribution"]
    table.add_row("judged scatter (relevant docs per question)",
                  ", ".join(f"{k}: {v}" for k, v in judged.items()), "2 for all")
    table.add_row("evidence scatter_docs distribution",
                  ", ".join(f"{k}: {v}" for k, v in ev["distribution"].items()), "")
    table.add_row("evidence scatter >= 2",
                  f"{ev['at_least_2']}/{n} = {ev['share_at_least_2']:.1%}", f">= {TARGET:.0%}")
    table.add_row("scattered fires at k = 1 (stored diagnoses)",
                  f"{sc['k1_stored']}/{n} = {sc['share_k1_stored']:.1%}", "")
    table.add_row("scattered at k = 2 / k = 10 (recomputed)",
                  f"{sc['k2_recomputed']} / {sc['k10_recomputed']}", "")
    table.add_row("answer sentences traced / supporting facts",
                  f"{cov['traced_sentences']} / {cov['supporting_facts']}", "")
    table.add_row("sentences supported anywhere (index coverage)",
                  f"{cov['sentences_supported_anywhere']}/{cov['traced_sentences']} = "
                  f"{cov['sentence_index_coverage']:.1%}", "")
    table.add_row("mean index_coverage per question", f"{cov['mean_index_coverage']:.3f}", "")
    table.add_row("sentences whose best support is their own paragraph",
                  f"{cov['best_support_is_own_paragraph']}/{cov['traced_sentences']}", "")
    table.add_row("sentences also supported by the other gold paragraph",
                  f"{cov['also_supported_by_the_other_gold_paragraph']}", "")
    for name, value in a["recall"].items():
        table.add_row(f"{name} (judgments)", f"{value:.3f}", "")
    foreign = a["foreign_support"]
    table.add_row("support by a paragraph the sentence is not from (pairs)",
                  f"{foreign['pairs']} over {foreign['sentences']} sentences: "
                  + ", ".join(f"{k} {v}" for k, v in foreign["kinds"].items()), "")
    table.add_row("  of which lack a number or a name (content words)",
                  str(foreign["lacking_number_or_name"]), f"<= {LACKING_TARGET}")
    table.add_row("  of which lack an exact anchor (auditor.anchors)",
                  str(foreign["anchors"].get("lacks_an_anchor", 0)), "")
    kinds = a["failures"]["kinds"]
    table.add_row("why evidence scatter < 2",
                  ", ".join(f"{k}: {v}" for k, v in kinds.items()) or "-", "")
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder holding hotpotqa/ (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=None,
                        help="first N questions with sentence-level facts (default all 169)")
    parser.add_argument("--mode", default="hybrid", choices=["bm25", "dense", "hybrid"])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the log, qrels and DuckDB store in this folder")
    args = parser.parse_args(argv)
    folder = (args.data or DEFAULT_DATA) / "hotpotqa"
    if not folder.is_dir():
        print(f"error: no HotpotQA data at {folder}: pass --data with the folder that holds "
              "hotpotqa/ (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        questions, counts = load_questions(folder, args.limit)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from auditor.embed import load_encoder

    encoder = load_encoder("minilm")
    chunks = list(read_corpus(folder / "corpus.jsonl"))
    began = time.perf_counter()
    index, build = open_index(chunks, args.out / "index" / "hotpotqa", "english", encoder)
    build["seconds_total"] = round(time.perf_counter() - began, 1)
    with tempfile.TemporaryDirectory(prefix="hotpotqa-bench-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        (work / "audit.duckdb").unlink(missing_ok=True)
        log, qrels = write_inputs(questions, folder / "qrels" / "dev.tsv", work)
        settings = AuditSettings(
            log=log, qrels=qrels, store=work / "audit.duckdb", backend="embedded",
            mode=args.mode, k=KS, depth=DEPTH, level="doc", diagnose_k=1, ablations=True,
            self_probe=False, index=index.directory, encoder="minilm",
        )
        print(f"auditing {len(questions)} questions (mode {args.mode}, diagnose_k 1) ...",
              flush=True)
        began = time.perf_counter()
        run_id, status = run_audit(settings, backend=index)
        audit_seconds = round(time.perf_counter() - began, 1)
        store = Store(settings.store)
        run = read_run(store, run_id)
    texts = {c.doc_id: f"{c.title} {c.text}" for c in chunks}
    analysis = analyse(questions, run, settings.scatter_limit, texts)
    result = {
        "setup": {
            "data": str(folder.resolve()), "mode": args.mode, "level": "doc", "k": KS,
            "depth": DEPTH, "diagnose_k": 1, "scatter_limit": settings.scatter_limit,
            "questions_with_facts": counts["with_facts"], "limit": args.limit,
            "corpus_paragraphs": len(chunks), "index": {"directory": str(index.directory),
                                                        **build},
            "run_id": run_id, "run_status": status, "audit_seconds": audit_seconds,
            "seconds_total": round(time.perf_counter() - started, 1),
            "python": platform.python_version(),
        },
        "analysis": analysis,
    }
    print_table(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "hotpotqa.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path} (audit {audit_seconds} s, total {result['setup']['seconds_total']} s)")
    return 0 if status == "complete" else 1


if __name__ == "__main__":
    raise SystemExit(main())
