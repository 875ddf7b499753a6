"""Throughput of a full audit (issue 12), as ratios measured in one process (CPU time).

    .venv/bin/python bench/throughput.py [--data ../shared/data] [--out bench/results]
                                         [--profile] [--skip-hotpotqa] [--skip-scifact]

- HotpotQA (``<data>/hotpotqa``, the 169 questions with supporting facts as answers, built
  as ``bench/hotpotqa.py`` builds them): hybrid, trace, ablations and self-probe on, against a
  warm index (built once with ``auditor index build``'s own code into its own store, which
  each run copies). Answer sentences per CPU-second of the whole run against raw
  ``encode`` sentences per CPU-second on the same sentences (the model already loaded);
  texts the model embedded per answer sentence, and each kind of text embedded.
- SciFact fixture: a cold run (nothing cached, the model loaded during the run), then the
  same run again on the same store: the model must never load, and its CPU time is compared
  with the cold run's.

Every ratio is printed next to its target; results go to ``<out>/throughput.json``.
``--profile`` reruns the HotpotQA audit under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hotpotqa import DEFAULT_DATA, load_questions, write_inputs  # noqa: E402

from auditor.audit import run_audit  # noqa: E402
from auditor.backends.embedded import EmbeddedBackend  # noqa: E402
from auditor.cli.run import build_index  # noqa: E402
from auditor.config import AuditSettings  # noqa: E402
from auditor.corpus_reader import read_corpus  # noqa: E402
from auditor.embed import load_encoder  # noqa: E402
from auditor.evidence import passage_windows, support_passage  # noqa: E402
from auditor.metrics.corpus import probe_text  # noqa: E402
from auditor.sentences import is_factual, split_sentences  # noqa: E402
from auditor.store import Store  # noqa: E402

FIXTURE = REPO / "fixtures" / "scifact"
KS = [1, 2, 5, 10]
DEPTH = 100


@dataclass(frozen=True)
class Row:
    """One printed line: a measured value and, for a ratio, its target."""

    name: str
    value: float | int | str
    target: str = ""
    ok: bool | None = None


# Another helper's bench/scale.py appends its sections here: each takes the parsed
# arguments and returns its rows (printed and stored like the ones below).
SECTIONS: list[Callable[[argparse.Namespace], list[Row]]] = []


class Counting:
    """Records every text the loaded model encodes (wraps that one instance's ``encode``)."""

    def __init__(self, name: str = "minilm") -> None:
        self.texts: list[str] = []
        self.encoder = load_encoder(name)  # type: ignore[arg-type]
        inner = type(self.encoder).encode.__get__(self.encoder)

        def encode(texts: Sequence[str]) -> Any:
            self.texts.extend(texts)
            return inner(texts)

        self.encoder.encode = encode  # type: ignore[method-assign]


def cpu() -> float:
    return time.process_time()


def answer_sentences(log: Path) -> list[str]:
    """The factual sentences of every answer in the log, as the tracer splits them."""
    out: list[str] = []
    for line in log.read_text().splitlines():
        answer = json.loads(line).get("answer") or ""
        out.extend(s.text for s in split_sentences(answer) if is_factual(s))
    return out


def kinds(texts: list[str], log: Path, corpus: Path) -> dict[str, int]:
    """How many texts of each kind the model embedded (a text of two kinds counts once,
    in the first kind listed)."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    chunks = list(read_corpus(corpus))
    sets = {
        "queries": {r["query"] for r in records},
        "sentences": set(answer_sentences(log)),
        "titles": {probe_text(c.title, c.text) for c in chunks},
        "passages": {support_passage(c.title, c.text) for c in chunks}
        | {f"{c.title} {c.text}".strip() for c in chunks},
        "windows": {w for c in chunks for w in passage_windows(support_passage(c.title, c.text))},
    }
    counts: Counter[str] = Counter()
    for text in texts:
        counts[next((kind for kind, known in sets.items() if text in known), "other")] += 1
    return {kind: counts.get(kind, 0) for kind in [*sets, "other"]}


# HotpotQA ---------------------------------------------------------------------------------
def warm_index(folder: Path, home: Path) -> tuple[Path, Path, float]:
    """The index and the store holding its cached vectors, built once (CPU s of a build)."""
    index, store = home / "index", home / "index.duckdb"
    settings = AuditSettings(corpus=folder / "corpus.jsonl", index=index, store=store,
                             encoder="minilm")
    began = cpu()
    print(f"  index build (cached after the first time) into {home} ...", flush=True)
    print(f"  {build_index(settings)}", flush=True)
    return index, store, round(cpu() - began, 1)


def hotpotqa(args: argparse.Namespace, result: dict[str, Any]) -> list[Row]:
    folder = (args.data or DEFAULT_DATA) / "hotpotqa"
    questions, _ = load_questions(folder, None)
    index, index_store, build_cpu = warm_index(folder, args.out / "throughput" / "hotpotqa")
    counting = Counting()
    with tempfile.TemporaryDirectory(prefix="throughput-") as scratch:
        work = Path(scratch)
        log, qrels = write_inputs(questions, folder / "qrels" / "dev.tsv", work)
        sentences = answer_sentences(log)
        began = cpu()
        counting.encoder.encode(sentences)
        raw_cpu = cpu() - began
        counting.texts.clear()

        def settings(name: str) -> AuditSettings:
            store = work / f"{name}.duckdb"
            shutil.copyfile(index_store, store)
            return AuditSettings(log=log, qrels=qrels, store=store, index=index,
                                 encoder="minilm", mode="hybrid", k=KS, depth=DEPTH,
                                 diagnose_k=1, trace=True, ablations=True, self_probe=True)

        run = settings("run")
        began = cpu()
        run_id, status = run_audit(run)
        run_cpu = cpu() - began
        embedded = list(counting.texts)
        cache = Store(run.store).run(run_id)["counts"]["embedding_cache"]
        by_kind = kinds(embedded, log, folder / "corpus.jsonl")  # the log lives in scratch
        if args.profile:
            result["hotpotqa_profile"] = profile(settings("profiled"))
    pipeline_rate, raw_rate = len(sentences) / run_cpu, len(sentences) / raw_cpu
    share = pipeline_rate / raw_rate
    per_sentence = len(embedded) / len(sentences)
    result["hotpotqa"] = {
        "questions": len(questions), "answer_sentences": len(sentences), "status": status,
        "index_build_cpu_s": build_cpu, "run_cpu_s": round(run_cpu, 2),
        "raw_encode_cpu_s": round(raw_cpu, 2), "embedded": len(embedded),
        "embedded_by_kind": by_kind,
        "embedding_cache": cache,
    }
    return [
        Row("hotpotqa answer sentences / CPU-s (pipeline)", round(pipeline_rate, 2)),
        Row("hotpotqa raw encode sentences / CPU-s", round(raw_rate, 2)),
        Row("hotpotqa pipeline share of raw encode", f"{share:.1%}", ">= 25%", share >= 0.25),
        Row("hotpotqa texts embedded per answer sentence", round(per_sentence, 3), "<= 1.5",
            per_sentence <= 1.5),
        Row("hotpotqa texts embedded by kind", ", ".join(f"{k} {v}" for k, v in by_kind.items())),
        Row("hotpotqa run CPU s (warm index)", round(run_cpu, 1)),
    ]


def profile(settings: AuditSettings, top: int = 25) -> list[str]:
    """The run under cProfile: the functions with the most cumulative and own time."""
    profiler = cProfile.Profile()
    profiler.runcall(run_audit, settings)
    lines = []
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(top)
        lines.append(text.getvalue())
    print("\n".join(lines))
    return lines


# SciFact fixture: a cold run, then a 100% cache hit ---------------------------------------
def scifact(args: argparse.Namespace, result: dict[str, Any]) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="throughput-scifact-") as scratch:
        work = Path(scratch)
        # the bare index (no cache at all): the run below starts cold
        EmbeddedBackend.build(read_corpus(FIXTURE / "corpus.jsonl"), work / "index",
                              load_encoder("minilm"))
        settings = AuditSettings(log=FIXTURE / "log.jsonl", qrels=FIXTURE / "qrels.tsv",
                                 store=work / "audit.duckdb", index=work / "index",
                                 encoder="minilm", mode="hybrid", trace=True, ablations=True)
        load_encoder.cache_clear()  # the cold run loads the model itself
        began = cpu()
        run_audit(settings)
        cold = cpu() - began
        load_encoder.cache_clear()
        began = cpu()
        run_id, _ = run_audit(settings)
        warm = cpu() - began
        never_loaded = load_encoder.cache_info().misses == 0
        cache = Store(settings.store).run(run_id)["counts"]["embedding_cache"]
    assert never_loaded, "the model was loaded on a run whose texts were all cached"
    ratio = warm / cold
    result["scifact"] = {"cold_cpu_s": round(cold, 2), "rerun_cpu_s": round(warm, 2),
                         "rerun_model_loaded": not never_loaded, "rerun_cache": cache}
    return [
        Row("scifact rerun: model loaded", "no" if never_loaded else "yes", "no", never_loaded),
        Row("scifact rerun CPU / cold run CPU", f"{ratio:.1%}", "<= 15%", ratio <= 0.15),
    ]


def show(rows: list[Row]) -> None:
    width = max(len(r.name) for r in rows)
    for r in rows:
        verdict = "" if r.ok is None else ("  PASS" if r.ok else "  FAIL")
        target = f"  (target {r.target})" if r.target else ""
        print(f"{r.name:<{width}}  {r.value}{target}{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder holding hotpotqa/ (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--profile", action="store_true", help="profile the HotpotQA run")
    parser.add_argument("--skip-hotpotqa", action="store_true")
    parser.add_argument("--skip-scifact", action="store_true")
    args = parser.parse_args(argv)
    folder = (args.data or DEFAULT_DATA) / "hotpotqa"
    if not args.skip_hotpotqa and not folder.is_dir():
        print(f"error: no HotpotQA data at {folder}: pass --data with the folder that holds "
              "hotpotqa/ (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {}
    rows: list[Row] = []
    sections = [*([hotpotqa] if not args.skip_hotpotqa else []),
                *([scifact] if not args.skip_scifact else [])]
    later = [lambda a, _, extra=extra: extra(a) for extra in SECTIONS]
    for section in [*sections, *later]:
        done = section(args, result)
        show(done)  # as each section ends: a long bench says what it found so far
        rows += done
    print()
    show(rows)
    result["rows"] = [asdict(r) for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "throughput.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
