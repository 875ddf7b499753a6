"""Calibrate and test the evidence support score on FaithBench's human labels.

    .venv/bin/python bench/faithbench.py [--data ../shared/data] [--out bench/results]
                                         [--cache /tmp/faithbench-embeddings.npz]

FaithBench (Bao et al., NAACL 2025; CC BY-NC-SA 4.0, read from ``../shared``, never copied
here) pairs 75 source texts with summaries by 10 LLMs; annotators marked summary spans as
Unwanted (Intrinsic/Extrinsic), Benign or Questionable.

Labels. Each summary is split with ``split_sentences``; only ``is_factual`` sentences are
scored (as in an audit). A sentence is **unsupported** when an annotation whose label list
holds any ``Unwanted*`` label overlaps its characters. Sentences touched only by Benign or
Questionable spans count as supported (Benign is by definition acceptable; Questionable is
undecided); two variants are reported too: excluding those sentences, and counting
Questionable as unsupported (FaithBench's own ``binarize.py`` default).

Halves. FaithBench's 75 source texts are 61 articles: 11 articles appear two or three times,
differing only in a number ("41" vs "39"), whitespace or a quote mark. Halves are drawn by
article, ``sha256(source without digits and whitespace) % 2``, so every summary of an article
falls in one half: half A chooses everything (blend weights, the weighted-mean weight,
thresholds), half B only reports.

Variants. Each signal alone, a weighted mean of cosine and containment (weight by AUC on
half A) and the logistic blend fitted on half A now, next to the blend ``evidence.py``
ships (its constants should equal the fit; the script says so when they do not). Column
``wrong``: share of half-B sentences that some source of *another* article passes at the
threshold, the false support an index-wide search would find.

Threshold. Chosen on half A to maximise F1 of "unsupported" detection (a sentence is flagged
when ``score < threshold``): the audit shows flagged sentences to a person, so precision
counts as much as recall. Youden's J is stored next to it (for the shipped blend it picks
the same value).

Summary level. A summary is unsupported when it has any Unwanted span; its score is the
minimum support of its sentences. FaithBench's ``detector_scores`` (HHEM, TRUE, TrueTeacher,
GPT judges) are consistency scores: HHEM outputs the probability that the summary is
consistent, FaithBench's own ``scripts/binarize.py`` codes consistent as 1, and sample
b1-1 (no annotation) has 1 from every binary judge. So each is flipped (``1 - score``) to
read "higher = more likely hallucinated". Half A agrees for every detector but
gpt-3.5-turbo, which is at chance either way (the as-released AUC is stored and printed).
Missing values (true_nli: 2) are dropped per detector. The gap to each detector on half B
gets a paired bootstrap interval that resamples articles.

Writes ``<out>/faithbench.json`` (aggregate numbers only) and prints tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from auditor import evidence  # noqa: E402
from auditor.embed import load_encoder  # noqa: E402
from auditor.sentences import Sentence, is_factual, split_sentences  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"


@dataclass
class Item:
    """One factual summary sentence with its labels."""

    sample: int
    source: int
    text: str
    unwanted: bool
    questionable: bool
    benign_or_questionable_only: bool


@dataclass
class Sample:
    id: str
    source: int
    half: str
    unwanted: bool  # any Unwanted annotation anywhere in the summary
    detectors: dict[str, float | None]
    items: list[int] = field(default_factory=list)


# metrics ----------------------------------------------------------------------------------
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC (ties count one half); positives are labels == 1."""
    labels = labels.astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    # tied scores share their average rank
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def bootstrap_delta(
    y: np.ndarray, ours: np.ndarray, theirs: np.ndarray, groups: np.ndarray, rounds: int = 1000
) -> tuple[float, float]:
    """95% interval of AUC(ours) - AUC(theirs), resampling whole articles (paired)."""
    rng = np.random.default_rng(0)
    names = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in names]
    deltas = []
    for _ in range(rounds):
        pick = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        deltas.append(roc_auc(y[pick], ours[pick]) - roc_auc(y[pick], theirs[pick]))
    low, high = np.nanpercentile(deltas, [2.5, 97.5])
    return round(float(low), 3), round(float(high), 3)


def prf(labels: np.ndarray, flagged: np.ndarray) -> dict[str, float | int]:
    tp = int((labels & flagged).sum())
    fp = int((~labels & flagged).sum())
    fn = int((labels & ~flagged).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def best_threshold(labels: np.ndarray, support: np.ndarray) -> float:
    """The threshold maximising F1 of flagging ``support < t`` (midpoints between scores)."""
    values = np.unique(support)
    candidates = np.concatenate(([values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [1.0 + 1e-6]))
    f1 = [prf(labels, support < t)["f1"] for t in candidates]
    return float(candidates[int(np.argmax(f1))])


def best_gated_threshold(labels: np.ndarray, support: np.ndarray, gated: np.ndarray) -> float:
    """Like :func:`best_threshold` for a score whose ``gated`` cells are always flagged
    (they lack an anchor: ``evidence.blend`` keeps them under any threshold it is given)."""
    values = np.unique(support[~gated]) if (~gated).any() else np.array([0.5])
    candidates = np.concatenate(([values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [1.0 + 1e-6]))
    f1 = [prf(labels, gated | (support < t))["f1"] for t in candidates]
    return float(candidates[int(np.argmax(f1))])


def youden_threshold(labels: np.ndarray, support: np.ndarray) -> float:
    """The threshold maximising TPR - FPR of flagging ``support < t`` (for comparison)."""
    values = np.unique(support)
    candidates = np.concatenate(([values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [1.0 + 1e-6]))
    j = [(support[labels] < t).mean() - (support[~labels] < t).mean() for t in candidates]
    return float(candidates[int(np.argmax(j))])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Newton's method for logistic regression (bias first); deterministic, tiny ridge."""
    design = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(design.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        grad = design.T @ (p - y) + l2 * beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta


# data -------------------------------------------------------------------------------------
def article_key(source: str) -> str:
    """Near-copies of one article (a changed number, extra whitespace) share a key."""
    return hashlib.sha256(re.sub(r"[\d\s]+", "", source.lower()).encode()).hexdigest()


def half_of(source: str) -> str:
    return "A" if int(article_key(source), 16) % 2 == 0 else "B"


def overlaps(span: tuple[int, int], sentence: Sentence) -> bool:
    return span[0] < sentence.end and span[1] > sentence.start


def load(path: Path) -> tuple[list[str], list[Sample], list[Item], dict[str, int]]:
    """Sources, summaries and factual sentences with labels, plus counts of odd cases."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    sources: dict[str, int] = {}
    samples: list[Sample] = []
    items: list[Item] = []
    odd = {"skipped_sentences": 0, "unwanted_in_skipped_sentence": 0, "unwanted_uncovered": 0}
    for row in rows:
        src = sources.setdefault(row["source"], len(sources))
        spans = [
            ((a["summary_start"], a["summary_end"]), set(a["label"])) for a in row["annotations"]
        ]
        bad = [span for span, labels in spans if any(x.startswith("Unwanted") for x in labels)]
        sample = Sample(
            row["id"],
            src,
            half_of(row["source"]),
            bool(bad),
            dict(row["detector_scores"]),
        )
        sentences = split_sentences(row["summary"])
        odd["unwanted_uncovered"] += sum(
            not any(overlaps(span, s) for s in sentences) for span in bad
        )
        for sentence in sentences:
            touched = [labels for span, labels in spans if overlaps(span, sentence)]
            unwanted = any(x.startswith("Unwanted") for labels in touched for x in labels)
            if not is_factual(sentence):
                odd["skipped_sentences"] += 1
                odd["unwanted_in_skipped_sentence"] += unwanted
                continue
            sample.items.append(len(items))
            items.append(
                Item(
                    sample=len(samples),
                    source=src,
                    text=sentence.text,
                    unwanted=unwanted,
                    questionable=unwanted or any("Questionable" in lab for lab in touched),
                    benign_or_questionable_only=bool(touched) and not unwanted,
                )
            )
        samples.append(sample)
    return list(sources), samples, items, odd


# scoring ----------------------------------------------------------------------------------
def dense_only(sig: evidence.SupportSignals) -> np.ndarray:
    return sig.dense


def variants(
    sig: evidence.SupportSignals, y: np.ndarray, train: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Candidate scores as functions of signals, all "higher = supported". ``sig`` holds the
    labelled (own-source) pairs; anything fitted is fitted on its ``train`` rows (half A)."""
    grid = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    aucs = [roc_auc(y[train], -(w * sig.dense + (1 - w) * sig.containment)[train]) for w in grid]
    w = float(grid[int(np.argmax(aucs))])
    missing = np.zeros_like(sig.absent) if sig.missing is None else sig.missing
    x = np.stack([sig.dense, sig.containment, np.log1p(sig.absent)], axis=1)
    beta = fit_logistic(x[train].astype(np.float64), (~y[train]).astype(np.float64))
    plain_w, plain_b = [round(float(b), 3) for b in beta[1:]], round(float(beta[0]), 3)
    x = np.hstack([x, np.log1p(missing)[:, None]])
    beta = fit_logistic(x[train].astype(np.float64), (~y[train]).astype(np.float64))
    weights, bias = [round(float(b), 3) for b in beta[1:]], round(float(beta[0]), 3)
    ungated = evidence.blend(sig, weights, bias, threshold=None).astype(np.float64)
    gate = best_gated_threshold(y[train], ungated[train], missing[train] > 0)
    held = train & (missing == 0)  # the rows the gate does not decide
    beta = fit_logistic(x[held][:, :3].astype(np.float64), (~y[held]).astype(np.float64))
    held_w, held_b = [round(float(b), 3) for b in beta[1:]], round(float(beta[0]), 3)
    held_scores = evidence.blend(sig, held_w, held_b, threshold=None).astype(np.float64)
    held_gate = best_gated_threshold(y[train], held_scores[train], missing[train] > 0)
    return {
        "cosine, best window": {"fn": lambda s: s.window},
        "cosine, whole passage": {"fn": lambda s: s.passage},
        "cosine, max of both": {"fn": dense_only},
        "containment share": {"fn": lambda s: s.containment},
        "absent count (negated)": {"fn": lambda s: -np.log1p(s.absent)},
        "weighted mean (dense, containment)": {
            "fn": lambda s: w * s.dense + (1 - w) * s.containment,
            "dense_weight": w,
        },
        "blend without anchors, fitted on A now": {
            "fn": lambda s: evidence.blend(replace(s, missing=None), plain_w, plain_b),
            "weights": plain_w,
            "bias": plain_b,
        },
        "logistic blend, fitted on A now": {
            "fn": lambda s: evidence.blend(s, weights, bias, gate),
            "weights": weights,
            "bias": bias,
            "threshold_fixed": gate,
        },
        "gated blend fitted on A rows holding every anchor": {
            "fn": lambda s: evidence.blend(s, held_w, held_b, held_gate),
            "weights": held_w,
            "bias": held_b,
            "threshold_fixed": held_gate,
        },
        "shipped (evidence.blend)": {
            "fn": evidence.blend,
            "weights": list(evidence.BLEND_WEIGHTS),
            "bias": evidence.BLEND_BIAS,
            "threshold_shipped": evidence.SUPPORT_THRESHOLD,
        },
    }


def evaluate(
    y: np.ndarray, support: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float | None
) -> dict[str, Any]:
    """Threshold chosen on half A (unless given), numbers reported on half B."""
    chosen = best_threshold(y[a], support[a])
    used = chosen if threshold is None else threshold
    return {
        "threshold_A": round(chosen, 4),
        "threshold_youden_A": round(youden_threshold(y[a], support[a]), 4),
        "threshold": round(used, 4),
        "auc_A": roc_auc(y[a], -support[a]),
        "auc_B": roc_auc(y[b], -support[b]),
        **{f"{k}_B": v for k, v in prf(y[b], support[b] < used).items()},
        "n_B": int(b.sum()),
        "unsupported_B": int(y[b].sum()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--cache", type=Path, help="npz of embeddings (keep it outside the repo)")
    args = parser.parse_args(argv)
    path = args.data / "faithbench" / "samples.jsonl"
    if not path.is_file():
        print(f"{path} not found: pass --data pointing at the shared data folder")
        return 2
    started = time.perf_counter()
    sources, samples, items, odd = load(path)
    cache: dict[str, np.ndarray] = {}
    if args.cache and args.cache.is_file():
        with np.load(args.cache) as stored:
            cache = {key: stored[key] for key in stored.files}
    scorer = evidence.SupportScorer(load_encoder("minilm"), cache)
    before = len(cache)
    t0 = time.perf_counter()
    # every factual sentence against every source: the own column is the labelled pair, the
    # columns of other articles measure false support from text about something else
    sig = scorer.signals([item.text for item in items], sources)
    embed_seconds = time.perf_counter() - t0
    if args.cache and len(cache) > before:
        np.savez(args.cache, **cache)

    rows = np.arange(len(items))
    own = np.array([item.source for item in items])
    keys = np.array([article_key(s) for s in sources])
    other = keys[None, :] != keys[own][:, None]
    y = np.array([item.unwanted for item in items])
    half = np.array([samples[item.sample].half for item in items])
    a, b = half == "A", half == "B"
    keep = np.array([not item.benign_or_questionable_only for item in items])
    yq = np.array([item.questionable for item in items])
    s_half = np.array([s.half for s in samples])
    s_y = np.array([s.unwanted for s in samples])
    sa, sb = s_half == "A", s_half == "B"

    table = variants(
        evidence.SupportSignals(
            *(m[rows, own] for m in (sig.window, sig.passage, sig.containment, sig.absent,
                                     sig.missing))
        ),
        y,
        a,
    )
    sentence_level: dict[str, Any] = {}
    summary_level: dict[str, Any] = {}
    label_variants: dict[str, Any] = {}
    summary_score: dict[str, np.ndarray] = {}  # higher = more likely hallucinated
    for name, spec in table.items():
        full = np.asarray(spec.pop("fn")(sig), dtype=np.float64)
        score = full[rows, own]
        fixed = spec.pop("threshold_fixed", None)
        if name.startswith("shipped"):
            fixed = evidence.SUPPORT_THRESHOLD
        result = evaluate(y, score, a, b, fixed)
        wrong = np.where(other, full, -np.inf).max(axis=1) >= result["threshold"]
        result["wrong_article_support_B"] = float(wrong[b].mean())
        sentence_level[name] = {**result, **spec}
        summary_score[name] = -np.array(
            [min((score[k] for k in s.items), default=1.0) for s in samples]
        )
        summary_level[f"ours: {name}"] = {
            "auc_A": roc_auc(s_y[sa], summary_score[name][sa]),
            "auc_B": roc_auc(s_y[sb], summary_score[name][sb]),
            "n_B": int(sb.sum()),
        }
        if name.startswith("shipped"):
            label_variants["Benign/Questionable-only sentences excluded"] = evaluate(
                y[keep], score[keep], a[keep], b[keep], fixed
            )
            label_variants["Questionable counted unsupported"] = evaluate(yq, score, a, b, fixed)
    ours = summary_score["shipped (evidence.blend)"]
    s_article = np.array([article_key(sources[s.source]) for s in samples])
    for det in sorted(samples[0].detectors):
        raw = [s.detectors.get(det) for s in samples]
        vals = np.array([np.nan if v is None else v for v in raw], dtype=float)
        ok = ~np.isnan(vals)
        on_b = ok & sb
        summary_level[det] = {
            "auc_A_as_released": roc_auc(s_y[ok & sa], vals[ok & sa]),
            "auc_A": roc_auc(s_y[ok & sa], 1 - vals[ok & sa]),
            "auc_B": roc_auc(s_y[on_b], 1 - vals[on_b]),
            "n_B": int(on_b.sum()),
            "shipped_minus_this_auc_B_95ci": bootstrap_delta(
                s_y[on_b], ours[on_b], 1 - vals[on_b], s_article[on_b]
            ),
        }
    results = {
        "dataset": "FaithBench (vectara/FaithBench @ cf89797d), ../shared/data/faithbench",
        "positive_class": "unsupported: an Unwanted* span overlaps the sentence",
        "split": "articles by sha256(source minus digits/whitespace) % 2; A calibrates, B reports",
        "threshold_rule": "max F1 of flagging score < t on half A (Youden's J shown too)",
        "counts": {
            "sources": len(sources),
            "articles": len(set(keys)),
            "articles_A": len({article_key(sources[s.source]) for s in samples if s.half == "A"}),
            "summaries": len(samples),
            "summaries_A": int(sa.sum()),
            "summaries_unsupported": int(s_y.sum()),
            "factual_sentences": len(items),
            "factual_sentences_A": int(a.sum()),
            "unsupported_sentences": int(y.sum()),
            "benign_or_questionable_only": int((~keep).sum()),
            "summaries_without_factual_sentence": sum(not s.items for s in samples),
            **odd,
        },
        "sentence_level": sentence_level,
        "label_variants_shipped": label_variants,
        "summary_level": summary_level,
        "seconds": {
            "total": round(time.perf_counter() - started, 1),
            "signals_incl_embedding": round(embed_seconds, 1),
        },
        "texts_embedded": len(scorer.cache) - before,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faithbench.json").write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return 0


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results["counts"]))
    head = f"{'thr':>6} {'aucA':>6} {'aucB':>6} {'P':>6} {'R':>6} {'F1':>6} {'wrong':>6}"
    print(f"\n{'sentence level, report on half B':44} {head}")
    rows = {
        **results["sentence_level"],
        **{f"shipped, {k}": v for k, v in results["label_variants_shipped"].items()},
    }
    for name, r in rows.items():
        wrong = r.get("wrong_article_support_B")
        print(
            f"{name[:44]:44} {r['threshold']:6.3f} {r['auc_A']:6.3f} {r['auc_B']:6.3f} "
            f"{r['precision_B']:6.3f} {r['recall_B']:6.3f} {r['f1_B']:6.3f} "
            + (f"{wrong:6.3f}" if wrong is not None else f"{'':6}")
        )
    print(
        f"\n{'summary level (higher = hallucinated)':44} {'aucA':>6} {'aucB':>6} {'n_B':>5}"
        "  shipped - this, 95% CI (B, by article)"
    )
    for name, r in results["summary_level"].items():
        ci = r.get("shipped_minus_this_auc_B_95ci")
        print(f"{name[:44]:44} {r['auc_A']:6.3f} {r['auc_B']:6.3f} {r['n_B']:5d}  {ci or ''}")
    released = {
        k: round(v["auc_A_as_released"], 3)
        for k, v in results["summary_level"].items()
        if "auc_A_as_released" in v
    }
    print(f"orientation check, half A AUC as released (< 0.5: higher = consistent): {released}")
    fitted = results["sentence_level"]["logistic blend, fitted on A now"]
    print(
        f"\nfitted on A: weights {fitted['weights']} bias {fitted['bias']} "
        f"threshold {fitted['threshold']}"
    )
    shipped = results["sentence_level"]["shipped (evidence.blend)"]
    if (
        fitted["weights"] != shipped["weights"]
        or fitted["bias"] != shipped["bias"]
        or abs(fitted["threshold"] - shipped["threshold"]) > 1e-3
    ):
        print("NOTE: evidence.py ships other constants than this fit: update them on purpose")
    print(f"{results['seconds']}; {results['texts_embedded']} texts embedded")


if __name__ == "__main__":
    raise SystemExit(main())
