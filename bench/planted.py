"""Planted faults on a fixture: is each planted fault named by the right cause?

    .venv/bin/python bench/planted.py [--dataset scifact] [--mode bm25] [--seed 7]
                                      [--out bench/results]

The fixture's log is kept as it is (its served lists were produced before the change) and
its corpus is changed, deterministically from ``--seed``:

- ``deleted``: relevant documents removed from the corpus. Expected: ``not_indexed``.
- ``renamed``: relevant documents re-indexed under a new id (``<id>-v2``) while the qrels
  still name the old id. The document is still there under its new name, but the judged id
  is absent from the index, so the expected cause is ``not_indexed`` as well.
- ``near_duplicate``: ``COPIES`` copies, each with one word misspelt, of the best-ranked
  non-relevant document that outranks a relevant one within the top k. Expected:
  ``crowded_out`` (and ``ranked_below_k`` for the relevant document pushed down).
- ``vocabulary``: a relevant document rewritten with synonyms (a small hand-written table,
  ``SYNONYMS``) for every word it shares with the query, so BM25 loses it while MiniLM
  still finds it. Only queries whose shared words are all in the table qualify. Expected:
  ``vocabulary_mismatch``.

Each query gets at most one kind of fault; a document relevant to several queries plants
its fault on all of them. Both corpora are indexed with the embedded backend (MiniLM, so
the dense ablation exists) and cached under ``<out>/index/planted-<dataset>-*``. The same
log and qrels are audited twice, on the original corpus (the baseline) and on the planted
one, with ablations on, diagnosing at k = 10.

Scoring, per planted cause C over queries (a query counts once per cause): recall = planted
queries of C diagnosed with C / planted queries of C. Precision "among planted" (the issue's
definition) = planted queries of C diagnosed with C / planted queries of any kind diagnosed
with C: unplanted queries may legitimately carry C from the original retrieval, so they are
left out. Also reported: precision over every query, precision of the diagnoses that are new
against the baseline, target-level recall (the diagnosis names the planted document), and
a confusion table (fault kind x cause). Results: ``<out>/planted.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from beir import open_index  # noqa: E402  (bench/beir.py: the shared index cache)

from auditor.audit import run_audit  # noqa: E402
from auditor.config import AuditSettings  # noqa: E402
from auditor.judgments import read_qrels  # noqa: E402
from auditor.logs import read_log  # noqa: E402
from auditor.records import Chunk, LogRecord, Qrel  # noqa: E402
from auditor.sentences import content_words  # noqa: E402
from auditor.store import Store  # noqa: E402

K = 10  # diagnose_k
DEPTH = 100
COPIES = 9  # near-duplicates injected per chosen document
PLAN = {"near_duplicate": 6, "vocabulary": 4, "deleted": 6, "renamed": 6}  # how many of each
EXPECTED = {"deleted": "not_indexed", "renamed": "not_indexed",
            "near_duplicate": "crowded_out", "vocabulary": "vocabulary_mismatch"}
KINDS = tuple(PLAN)
# Synonyms for the words some SciFact claims share with their relevant abstract (lower-case
# surface form -> replacement). Written for the fixture; a query qualifies for the
# vocabulary fault only when every shared word is here.
SYNONYMS = {
    "asymptomatic": "symptom-free", "visual": "ocular", "vision": "eyesight",
    "impaired": "reduced", "impairment": "deficit", "screening": "testing",
    "screened": "tested", "population": "community", "populations": "communities",
    "leads": "results", "lead": "result", "improvements": "gains", "improvement": "gain",
    "improved": "better", "improve": "better", "elderly": "older",
    "bariatric": "weight-loss", "surgery": "operation", "surgical": "operative",
    "mental": "psychological", "health": "wellbeing", "positive": "favourable",
    "impact": "effect", "breast": "mammary", "cancer": "carcinoma", "cancers": "carcinomas",
    "development": "onset", "developed": "arose", "developing": "acquiring",
    "determined": "decided", "exclusively": "solely", "genetic": "hereditary",
    "factors": "determinants", "factor": "determinant", "bone": "myeloid",
    "marrow": "tissue", "macrophage": "phagocyte", "macrophages": "phagocytes",
    "adult": "mature", "contribution": "input", "contributions": "inputs",
    "contribute": "add", "compartments": "pools", "compartment": "pool",
}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


class BenchError(Exception):
    """The benchmark cannot run; the message says what to do."""


# inputs -----------------------------------------------------------------------------------
def load_fixture(folder: Path) -> tuple[list[dict[str, str]], list[LogRecord], dict]:
    if not (folder / "corpus.jsonl").is_file():
        raise BenchError(f"{folder} is not a fixture folder (corpus.jsonl, log.jsonl, qrels.tsv)")
    with (folder / "corpus.jsonl").open(encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    records = [r for r in read_log(folder / "log.jsonl") if isinstance(r, LogRecord)]
    relevant: dict[str, list[str]] = {}
    for item in read_qrels(folder / "qrels.tsv"):
        if isinstance(item, Qrel) and item.grade >= 1:
            relevant.setdefault(item.query_id, []).append(item.doc_id)
    return docs, records, relevant


def chunks_of(docs: list[dict[str, str]]) -> list[Chunk]:
    return [Chunk(chunk_id=d["_id"], doc_id=d["_id"], title=d.get("title") or "",
                  text=d.get("text") or "") for d in docs]


# planting ---------------------------------------------------------------------------------
def shared_words(query: str, doc: dict[str, str]) -> set[str]:
    """Surface words (lower-case) of the document whose stem is a query content word."""
    terms = set(content_words(query))
    words = {w.lower() for w in WORD.findall(f"{doc['title']} {doc['text']}")}
    return {w for w in words if (stem := content_words(w)) and stem[0] in terms}


def rewrite(text: str) -> str:
    def swap(match: re.Match) -> str:
        word = match.group()
        new = SYNONYMS.get(word.lower())
        if new is None:
            return word
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return WORD.sub(swap, text)


def misspell(text: str, query: str, rng: random.Random) -> str:
    """One word of at least five letters, not a query term, with two inner letters swapped."""
    terms = set(content_words(query))
    spots = [m for m in WORD.finditer(text) if len(m.group()) >= 5
             and content_words(m.group()) and content_words(m.group())[0] not in terms]
    if not spots:
        return text + " (copy)"
    m = spots[rng.randrange(len(spots))]
    w = m.group()
    i = rng.randrange(1, len(w) - 2)
    return text[: m.start()] + w[:i] + w[i + 1] + w[i] + w[i + 2:] + text[m.end():]


def plan_faults(docs: list[dict[str, str]], records: list[LogRecord],
                relevant: dict[str, list[str]], ranking: dict[str, list[str]],
                dense: dict[str, list[str]], seed: int) -> dict[str, Any]:
    """Choose the faults. ``ranking``: doc ids per query in the run's mode on the original
    corpus; ``dense``: the same in dense mode. Returns the plan (all ids sorted, seeded)."""
    rng = random.Random(seed)
    by_id = {d["_id"]: d for d in docs}
    query = {r.query_id: r.query for r in records}
    judged = {d for ids in relevant.values() for d in ids}
    naming: dict[str, list[str]] = {}
    for q, ids in relevant.items():
        for d in ids:
            naming.setdefault(d, []).append(q)
    kind_of: dict[str, str] = {}
    targets: dict[str, list[str]] = {}
    extra: dict[str, Any] = {"duplicates": {}, "rewritten": {}, "renamed": {}, "deleted": []}

    dup_candidates = []
    for q in sorted(query):
        ranks = ranking.get(q, [])
        top = ranks[:K]
        pushed = [d for d in relevant.get(q, []) if d in top and top.index(d) > 0]
        above = [d for d in top if d not in judged]
        if pushed and above and top.index(above[0]) < max(top.index(d) for d in pushed):
            dup_candidates.append((q, above[0]))
    rng.shuffle(dup_candidates)
    for q, source in dup_candidates:
        if len(extra["duplicates"]) == PLAN["near_duplicate"]:
            break
        if source in extra["duplicates"].values():  # one set of copies per document
            continue
        kind_of[q] = "near_duplicate"
        top = ranking[q][:K]
        targets[q] = [d for d in relevant[q] if d in top and top.index(d) > top.index(source)]
        extra["duplicates"][q] = source

    vocab = []
    for q in sorted(query):
        if q in kind_of or len(relevant.get(q, [])) != 1:
            continue
        doc = relevant[q][0]
        words = shared_words(query[q], by_id[doc]) if doc in by_id else set()
        if (len(naming[doc]) == 1 and words and words <= set(SYNONYMS)
                and doc in ranking[q][:K] and doc in dense[q][:K]):
            vocab.append(q)
    for q in rng.sample(vocab, min(PLAN["vocabulary"], len(vocab))):
        kind_of[q], targets[q] = "vocabulary", list(relevant[q])
        extra["rewritten"][q] = relevant[q][0]

    free = sorted(d for d in judged if d in by_id and not any(q in kind_of
                                                               for q in naming[d]))
    rng.shuffle(free)
    for kind in ("deleted", "renamed"):
        chosen = 0
        for doc in list(free):
            if chosen == PLAN[kind]:
                break
            if any(kind_of.get(q, kind) != kind for q in naming[doc]):
                continue
            free.remove(doc)
            chosen += 1
            for q in naming[doc]:
                kind_of[q] = kind
                targets.setdefault(q, []).append(doc)
            if kind == "deleted":
                extra["deleted"].append(doc)
            else:
                extra["renamed"][doc] = f"{doc}-v2"
    return {"kind": dict(sorted(kind_of.items())),
            "targets": {q: sorted(t) for q, t in sorted(targets.items())},
            "candidates": {"near_duplicate": len(dup_candidates), "vocabulary": len(vocab)},
            **extra}


def planted_corpus(docs: list[dict[str, str]], plan: dict[str, Any],
                   records: list[LogRecord], seed: int) -> list[dict[str, str]]:
    query = {r.query_id: r.query for r in records}
    rewritten = set(plan["rewritten"].values())
    out = []
    for doc in docs:
        if doc["_id"] in plan["deleted"]:
            continue
        new = dict(doc)
        if doc["_id"] in plan["renamed"]:
            new["_id"] = plan["renamed"][doc["_id"]]
        if doc["_id"] in rewritten:
            new["title"], new["text"] = rewrite(doc["title"]), rewrite(doc["text"])
        out.append(new)
    by_id = {d["_id"]: d for d in docs}
    for q, source in sorted(plan["duplicates"].items()):
        for j in range(1, COPIES + 1):
            rng = random.Random(f"{seed}-{source}-{j}")
            out.append({"_id": f"{source}-dup{j}", "title": by_id[source]["title"],
                        "text": misspell(by_id[source]["text"], query[q], rng)})
    return out


# runs -------------------------------------------------------------------------------------
def audit(index: Any, folder: Path, mode: str, work: Path, name: str) -> dict[str, Any]:
    settings = AuditSettings(
        log=folder / "log.jsonl", qrels=folder / "qrels.tsv", store=work / f"{name}.duckdb",
        backend="embedded", mode=mode, k=[1, 5, K], depth=DEPTH, level="doc", diagnose_k=K,
        ablations=True, self_probe=False, index=index.directory, encoder="minilm",
    )
    settings.store.unlink(missing_ok=True)
    began = time.perf_counter()
    run_id, status = run_audit(settings, backend=index)
    seconds = round(time.perf_counter() - began, 1)
    with Store(settings.store).connect(read_only=True) as con:
        rows = con.execute("SELECT query_id, cause, target_id, evidence FROM diagnoses "
                           "WHERE run_id = ?", [run_id]).fetchall()
        hits = con.execute("SELECT query_id, doc_id, min(rank) FROM hits WHERE run_id = ? "
                           "GROUP BY query_id, doc_id", [run_id]).fetchall()
    ranks: dict[str, dict[str, int]] = {}
    for q, d, r in hits:
        ranks.setdefault(q, {})[d] = r
    return {"run_id": run_id, "status": status, "seconds": seconds,
            "diagnoses": [(q, c, t) for q, c, t, _ in rows],
            "evidence": {(q, c, t): json.loads(e) for q, c, t, e in rows}, "ranks": ranks}


def rankings(index: Any, records: list[LogRecord], mode: str) -> dict[str, list[str]]:
    results = index.search_many([r.query for r in records], mode, DEPTH)
    return {r.query_id: list(dict.fromkeys(h.doc_id for h in res.hits))
            for r, res in zip(records, results, strict=True)}


# scoring ----------------------------------------------------------------------------------
def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def score(plan: dict[str, Any], records: list[LogRecord], before: dict[str, Any],
          after: dict[str, Any]) -> dict[str, Any]:
    queries = [r.query_id for r in records]
    kind = plan["kind"]
    planted = set(kind)
    had = {(q, c) for q, c, _ in before["diagnoses"]}
    causes: dict[str, set[str]] = {}
    target_rows: set[tuple[str, str, str]] = set()
    for q, c, t in after["diagnoses"]:
        causes.setdefault(c, set()).add(q)
        if t is not None:
            target_rows.add((q, c, t))
    effective = {}
    for q, k in kind.items():  # did the fault cost a target its place in the top k?
        ranks = after["ranks"].get(q, {})
        effective[q] = k in ("deleted", "renamed") or any(
            (ranks.get(t) or DEPTH + 1) > K for t in plan["targets"][q])
    per_cause = {}
    for cause in dict.fromkeys(EXPECTED.values()):
        truth = {q for q, k in kind.items() if EXPECTED[k] == cause}
        found = causes.get(cause, set())
        new = {q for q in found if (q, cause) not in had}
        target_truth = [(q, t) for q in sorted(truth) for t in plan["targets"][q]]
        per_cause[cause] = {
            "planted_queries": len(truth), "diagnosed_queries": len(found),
            "true_positives": len(found & truth),
            "recall": _ratio(len(found & truth), len(truth)),
            "recall_effective": _ratio(sum(effective[q] for q in found & truth),
                                       sum(effective[q] for q in truth)),
            "precision_among_planted": _ratio(len(found & truth), len(found & planted)),
            "precision_all_queries": _ratio(len(found & truth), len(found)),
            "precision_new_vs_baseline": _ratio(len(new & truth), len(new)),
            "new_diagnosed_queries": len(new),
            "target_recall": None if cause == "crowded_out" else _ratio(
                sum((q, cause, t) in target_rows for q, t in target_truth), len(target_truth)),
            "missed": sorted(truth - found),
            "false_among_planted": sorted((found & planted) - truth),
            "outside_planted": sorted(found - planted),
            "outside_planted_new": sorted(new - planted),
        }
    confusion: dict[str, dict[str, int]] = {}
    for group in (*KINDS, "none"):
        members = [q for q in queries if kind.get(q, "none") == group]
        counts = Counter(c for c, qs in causes.items() for q in members if q in qs)
        confusion[group] = {"queries": len(members), **dict(sorted(counts.items()))}
    ungrounded = {r.query_id for r in records
                  if "ungrounded_sentence" in (r.metadata.get("planted") or [])}
    fixture = {}
    for name, run in (("original", before), ("planted", after)):
        unsupported = {q for q, c, _ in run["diagnoses"] if c == "unsupported_answer"}
        fixture[name] = {
            "planted": len(ungrounded), "unsupported_answer": len(unsupported),
            "recall": _ratio(len(unsupported & ungrounded), len(ungrounded)),
            "precision": _ratio(len(unsupported & ungrounded), len(unsupported)),
            "false_positives": sorted(unsupported - ungrounded),
        }
    return {
        "per_cause": per_cause, "confusion": confusion,
        "effective": {k: [sum(effective[q] for q in kind if kind[q] == k),
                          sum(1 for q in kind if kind[q] == k)] for k in KINDS},
        "ineffective": sorted(q for q, ok in effective.items() if not ok),
        "fixture_ungrounded_sentence": fixture,
        "queries": details(plan, before, after),
        "baseline_causes": dict(Counter(c for _, c in had).most_common()),
        "planted_causes": {c: len(qs) for c, qs in sorted(causes.items())},
    }


EVIDENCE_KEYS = ("by", "term_overlap", "bm25_rank", "dense_rank", "share", "rank", "missed")


def details(plan: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
            ) -> dict[str, Any]:
    """Per planted query: target ranks before/after and every cause, with the evidence of
    the planted causes (selected keys)."""
    out = {}
    for q, kind in plan["kind"].items():
        rows = []
        for query_id, cause, target in after["diagnoses"]:
            if query_id != q:
                continue
            row: dict[str, Any] = {"cause": cause, "target": target}
            if cause in EXPECTED.values():
                evidence = after["evidence"][(query_id, cause, target)]
                row.update({k: evidence[k] for k in EVIDENCE_KEYS if k in evidence})
            rows.append(row)
        out[q] = {
            "kind": kind,
            "targets": {t: [before["ranks"].get(q, {}).get(t), after["ranks"].get(q, {}).get(t)]
                        for t in plan["targets"][q]},
            "causes_before": sorted({c for query_id, c, _ in before["diagnoses"]
                                     if query_id == q}),
            "causes_after": rows,
        }
    return out


# output -----------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    s = result["score"]
    setup = result["setup"]
    table = Table(title=f"Planted faults on fixtures/{setup['dataset']} (mode {setup['mode']}, "
                        f"k {K}, seed {setup['seed']}): per planted cause, over queries")
    for header in ("cause", "planted", "diagnosed", "TP", "recall", "recall (effective)",
                   "target recall",
                   "precision (among planted)", "precision (all)", "precision (new)"):
        table.add_column(header, justify="left" if header == "cause" else "right")
    for cause, row in s["per_cause"].items():
        if not row["planted_queries"]:
            table.add_row(cause, "0", str(row["diagnosed_queries"]), "-", "not planted",
                          *["-"] * 5)
            continue
        table.add_row(cause, str(row["planted_queries"]), str(row["diagnosed_queries"]),
                      str(row["true_positives"]), _pct(row["recall"]),
                      _pct(row["recall_effective"]), _pct(row["target_recall"]),
                      _pct(row["precision_among_planted"]), _pct(row["precision_all_queries"]),
                      _pct(row["precision_new_vs_baseline"]))
    console.print(table)
    causes = sorted({c for row in s["confusion"].values() for c in row if c != "queries"})
    confusion = Table(title="Confusion: queries of each planted kind carrying each cause")
    confusion.add_column("planted kind")
    confusion.add_column("queries", justify="right")
    for cause in causes:
        confusion.add_column(cause.replace("_", " "), justify="right")
    for group, row in s["confusion"].items():
        confusion.add_row(group, str(row["queries"]), *(str(row.get(c, "")) for c in causes))
    console.print(confusion)
    console.print(f"effective plants (the fault cost a target its top-{K} place), "
                  f"effective/planted: {s['effective']}")
    for name, fix in s["fixture_ungrounded_sentence"].items():
        console.print(f"fixture's own ungrounded_sentence -> unsupported_answer, {name} corpus: "
                      f"recall {_pct(fix['recall'])}, precision {_pct(fix['precision'])} "
                      f"({fix['unsupported_answer']} diagnosed, {fix['planted']} planted)")


def run_dataset(name: str, mode: str, seed: int, index_root: Path, keep: Path | None
                ) -> dict[str, Any]:
    folder = REPO / "fixtures" / name
    started = time.perf_counter()
    docs, records, relevant = load_fixture(folder)
    from auditor.embed import load_encoder

    encoder = load_encoder("minilm")
    original, built_a = open_index(chunks_of(docs), index_root / f"planted-{name}-original",
                                   "english", encoder)
    plan = plan_faults(docs, records, relevant, rankings(original, records, mode),
                       rankings(original, records, "dense"), seed)
    changed = planted_corpus(docs, plan, records, seed)
    modified, built_b = open_index(chunks_of(changed), index_root / f"planted-{name}-{mode}",
                                   "english", encoder)
    with tempfile.TemporaryDirectory(prefix="planted-bench-") as scratch:
        work = keep / name if keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        print(f"{name}: auditing {len(records)} queries twice (original and planted corpus, "
              f"mode {mode}) ...", flush=True)
        before = audit(original, folder, mode, work, "original")
        after = audit(modified, folder, mode, work, "planted")
    return {
        "setup": {
            "dataset": name, "mode": mode, "seed": seed, "k": K, "depth": DEPTH,
            "copies": COPIES, "plan_sizes": PLAN, "expected": EXPECTED,
            "queries": len(records), "corpus_docs": len(docs), "planted_docs": len(changed),
            "index": {"original": built_a, "planted": built_b},
            "runs": {run_name: {k: run[k] for k in ("run_id", "status", "seconds")}
                     for run_name, run in (("original", before), ("planted", after))},
            "seconds": round(time.perf_counter() - started, 1),
        },
        "plan": plan,
        "score": score(plan, records, before, after),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="scifact",
                        help="fixture(s), comma-separated: scifact, hotpotqa (default scifact)")
    parser.add_argument("--mode", default="bm25", choices=["bm25", "hybrid"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the DuckDB stores in <keep>/<dataset>/")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.dataset.split(",") if n.strip()]
    unknown = [n for n in names if not (REPO / "fixtures" / n / "log.jsonl").is_file()]
    if unknown or not names:
        parser.error(f"unknown fixture {unknown}: use scifact, hotpotqa")
    started = time.perf_counter()
    results = {}
    try:
        for name in names:
            results[name] = run_dataset(name, args.mode, args.seed, args.out / "index", args.keep)
            print_tables(results[name])
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"setup": {"seconds_total": round(time.perf_counter() - started, 1),
                        "python": platform.python_version()}, "datasets": results}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "planted.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path} (total {result['setup']['seconds_total']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
