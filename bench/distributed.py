"""The audit on Ray next to the local executor: speedup, Ray's overhead, and a large night.

    .venv/bin/python bench/distributed.py [--data ../shared/data] [--limit N] [--batch-size 128]
                                          [--every-question] [--night 1000000] [--skip-hotpotqa]
                                          [--out bench/results]

**HotpotQA** (the full pipeline of bench/hotpotqa.py: MiniLM, hybrid, answers traced, ablations
on, diagnose_k 1, depth 100, ``--limit`` questions, default all 169): the same log audited
three times, each in a fresh child process on a copy of one warm store: the local executor, Ray
with 1 worker, Ray with 2 workers (Ray started inside the run with ``workers`` CPUs). The warm
store holds what ``auditor index build`` caches (every chunk's passage, its windows and probes;
built once, kept next to the index), and no query or answer sentence: each run embeds its
queries and answers, as a nightly run on a built index does. A cold store would time the
corpus's embedding instead, on the driver (the knowledge-gaps view encodes its chunk sample
there), which is index-build work, not the audit's. For each: wall time, and CPU time read from
``/proc`` every 0.2 s over the child's whole process tree (driver, Ray's own processes, every
actor): the machine is shared, so wall time moves with the other load and CPU time does not.
Ratios, as the issue asks:

- overhead = CPU(Ray, 1 worker) / CPU(local), target <= 1.15 (wall ratio beside it);
- speedup = wall(1 worker) / wall(2 workers), target >= 1.6, and its CPU-normalised form:
  the run's critical path on dedicated cores, driver CPU + the busiest actor's CPU, with 1
  worker over the same with 2 (the driver's serial work counted as not overlapping: a floor).
- the per-query metric means of the three stores must be equal (same answers).

**Night** (``--night N``, default 1M): bench/scale.py's synthetic log of N queries (SciFact
fixture records under new ids; bm25, hash encoder, trace and ablations off, depth 100)
through ``auditor run --executor ray --workers 2`` in a child: the driver's peak RSS
(``VmHWM``, target < 2 GB), the store's size, stored rows per second and queries per
worker-core second. Results: ``<out>/distributed.json``; bench/README quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "data"
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.2
CONFIGS = (("local", 1), ("ray", 1), ("ray", 2))


# the process tree's CPU time, sampled from /proc -------------------------------------------
@dataclass
class Proc:
    name: str
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class TreeSampler:
    """The CPU seconds (utime + stime) and peak RSS of ``root`` and all its descendants,
    the last value seen per pid: a process that exits loses at most one sample interval."""

    root: int
    procs: dict[int, Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> TreeSampler:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        time.sleep(SAMPLE_S * 2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(SAMPLE_S)

    def sample(self) -> None:
        parents: dict[int, int] = {}
        stats: dict[int, list[str]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            parents[int(entry)] = int(fields[1])
            stats[int(entry)] = fields
        tree = {self.root}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in tree & stats.keys():
            fields = stats[pid]
            proc = self.procs.setdefault(pid, Proc(_name(pid)))
            if "ShardWorker" not in proc.name:
                proc.name = _name(pid)  # an idle Ray worker may have become an actor
            proc.cpu_s = max(proc.cpu_s, (int(fields[11]) + int(fields[12])) / TICK)
            proc.peak_rss_mb = max(proc.peak_rss_mb, _hwm_mb(pid))

    def summary(self) -> dict[str, Any]:
        actors = [p.cpu_s for pid, p in self.procs.items() if "ShardWorker" in p.name]
        driver = self.procs.get(self.root, Proc("driver"))
        return {"cpu_s": round(sum(p.cpu_s for p in self.procs.values()), 1),
                "driver_cpu_s": round(driver.cpu_s, 1),
                "actor_cpu_s": sorted((round(c, 1) for c in actors), reverse=True),
                "ray_other_cpu_s": round(sum(p.cpu_s for pid, p in self.procs.items()
                                             if pid != self.root
                                             and "ShardWorker" not in p.name), 1),
                "driver_peak_rss_mb": round(driver.peak_rss_mb, 1),
                "processes": len(self.procs)}


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measured(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``command`` as a child and sample its process tree until it ends."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "0"}
    env.pop("AUDITOR_ES_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(child.pid).start()
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    return done, {"wall_s": round(wall, 1), **sampler.summary()}


# HotpotQA: local vs Ray with 1 and 2 workers ------------------------------------------------
def hotpotqa(data: Path, limit: int | None, out: Path, work: Path, batch_size: int = 128,
             every_question: bool = False) -> dict[str, Any]:
    from beir import open_index  # bench/beir.py: the shared index cache
    from hotpotqa import DEPTH, KS, load_questions, write_inputs

    from auditor.corpus_reader import read_corpus
    from auditor.embed import load_encoder

    folder = data / "hotpotqa"
    questions, _ = load_questions(folder, None if every_question else limit)
    if every_question:
        questions = (questions + _short_answered(folder, questions))[:limit]
    chunks = list(read_corpus(folder / "corpus.jsonl"))
    index, _ = open_index(chunks, out / "index" / "hotpotqa", "english", load_encoder("minilm"))
    warm = warm_store(chunks, out / "index" / "hotpotqa-cache.duckdb")
    log, qrels = write_inputs(questions, folder / "qrels" / "dev.tsv", work)
    runs: dict[str, Any] = {}
    for executor, workers in CONFIGS:
        name = "local" if executor == "local" else f"ray_{workers}"
        store = work / f"{name}.duckdb"
        shutil.copyfile(warm, store)
        settings = {"log": str(log), "qrels": str(qrels), "store": str(store),
                    "backend": "embedded", "mode": "hybrid", "k": KS, "depth": DEPTH,
                    "level": "doc", "diagnose_k": 1, "ablations": True, "self_probe": False,
                    "index": str(index.directory), "encoder": "minilm", "baseline": "none",
                    "reports": None, "executor": executor, "workers": workers,
                    "batch_size": batch_size}
        print(f"hotpotqa: {len(questions)} questions, {name} ...", flush=True)
        done, numbers = measured([sys.executable, __file__, "--child", json.dumps(settings)],
                                 work)
        if done.returncode:
            raise RuntimeError(f"{name} failed: {done.stderr[-3000:]}")
        numbers["run"] = json.loads(done.stdout.strip().splitlines()[-1])
        numbers["metric_means"] = _means(store)
        with duckdb.connect(str(store), read_only=True) as con:
            sentences = con.execute("SELECT count(*) FROM sentences").fetchone()[0]
        numbers["sentences"] = sentences
        busy = sum(numbers["actor_cpu_s"]) or numbers["driver_cpu_s"]  # local: the driver
        numbers["per_worker_core_s"] = {"queries": round(len(questions) / busy, 2),
                                        "sentences": round(sentences / busy, 2)}
        runs[name] = numbers
        print(json.dumps({k: v for k, v in numbers.items() if k != "metric_means"}), flush=True)
    return {"questions": len(questions), "limit": limit, "batch_size": batch_size,
            "every_question": every_question, "runs": runs, **_ratios(runs)}


def _short_answered(folder: Path, with_facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The questions without sentence-level facts (331 of the 500), each answered by the
    dataset's short answer: a larger workload of the same audit, for ``--every-question``."""
    taken = {q["query_id"] for q in with_facts}
    with (folder / "queries.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [{"query_id": row["_id"], "query": row["text"], "type": row.get("type"),
             "answer": row["answer"]} for row in rows if row["_id"] not in taken]


def warm_store(chunks: list[Any], path: Path) -> Path:
    """A store whose embedding cache holds what ``auditor index build`` caches for these
    chunks (:func:`auditor.prefetch.prefetch`); built once per corpus content."""
    from auditor.backends.embedded import content_hash
    from auditor.embed import CachedEncoder
    from auditor.prefetch import prefetch
    from auditor.store import Store

    stamp = path.with_suffix(".hash")
    wanted = content_hash(chunks)
    if path.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return path
    path.unlink(missing_ok=True)
    print(f"  caching passages, windows and probes of {len(chunks):,} chunks ...", flush=True)
    encoder = CachedEncoder.named("minilm", Store(path))
    prefetch(encoder, chunks, lambda _: encoder.flush() if len(encoder.pending) > 5000 else None)
    encoder.flush()
    stamp.write_text(wanted)
    return path


def _means(store: Path) -> dict[str, float]:
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute("SELECT metric, round(avg(value), 9) FROM metrics "
                           "GROUP BY metric ORDER BY metric").fetchall()
    return {metric: value for metric, value in rows if value is not None}


def _ratios(runs: dict[str, Any]) -> dict[str, Any]:
    local, one, two = runs["local"], runs["ray_1"], runs["ray_2"]

    def critical(run: dict[str, Any]) -> float:
        return run["driver_cpu_s"] + max(run["actor_cpu_s"] or [0.0])

    return {
        "overhead_cpu": round(one["cpu_s"] / local["cpu_s"], 3),
        "overhead_wall": round(one["wall_s"] / local["wall_s"], 3),
        "speedup_wall": round(one["wall_s"] / two["wall_s"], 3),
        "speedup_cpu_critical_path": round(critical(one) / critical(two), 3),
        "same_metric_means": local["metric_means"] == one["metric_means"] == two["metric_means"],
        "targets": {"overhead": "<= 1.15", "speedup": ">= 1.6"},
    }


def child(settings_json: str) -> None:
    """One audit in this process (the child the parent samples); prints the run's JSON."""
    from auditor.audit import run_audit
    from auditor.config import AuditSettings
    from auditor.distributed import run_distributed

    settings = AuditSettings(**json.loads(settings_json))
    began = time.process_time()
    runner = run_distributed if settings.executor == "ray" else run_audit
    run_id, status = runner(settings)
    print(json.dumps({"run_id": run_id, "status": status,
                      "driver_process_cpu_s": round(time.process_time() - began, 1)}))


# a large night through Ray ---------------------------------------------------------------
def night(queries: int, workers: int, work: Path) -> dict[str, Any]:
    from memory import build_index
    from scale import write_config

    build_index(work)
    config = write_config(work / f"night{queries}", work / "index", queries)
    print(f"night: {queries:,} queries through Ray with {workers} workers ...", flush=True)
    done, numbers = measured([sys.executable, "-m", "auditor.cli", "run", "--json",
                              "--executor", "ray", "--workers", str(workers),
                              "--config", str(config)], config.parent)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the night failed: {done.stderr[-3000:]}")
    store = config.parent / "audit.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    stored = sum(rows.values())
    replayed = json.loads(done.stdout)["counts"]["replayed"]
    actor_cpu = sum(numbers["actor_cpu_s"])
    return {"queries": replayed, "workers": workers, **numbers,
            "store_mb": round(store.stat().st_size / 1e6, 1), "rows": rows,
            "rows_per_s": round(stored / numbers["wall_s"]),
            "queries_per_s": round(replayed / numbers["wall_s"], 1),
            "queries_per_actor_cpu_s": round(replayed / actor_cpu, 1) if actor_cpu else None,
            "targets": {"driver_peak_rss_mb": "< 2048"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder holding hotpotqa/ (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=None,
                        help="audit the first N HotpotQA questions (default all 169)")
    parser.add_argument("--every-question", action="store_true",
                        help="HotpotQA: all 500 questions, the 331 without sentence-level "
                             "facts answered by their short answer (a larger workload)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="HotpotQA: queries per batch, and so per Ray shard (default 128)")
    parser.add_argument("--night", type=int, default=1_000_000,
                        help="queries of the simulated night (0: skip it)")
    parser.add_argument("--night-workers", type=int, default=2)
    parser.add_argument("--skip-hotpotqa", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if not args.skip_hotpotqa and not (args.data / "hotpotqa").is_dir():
        print(f"error: no HotpotQA data at {args.data / 'hotpotqa'}: pass --data with the "
              "folder that holds hotpotqa/ (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"cpus": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "distributed.json"
    with tempfile.TemporaryDirectory(prefix="distributed-bench-") as tmp:
        if not args.skip_hotpotqa:
            result["hotpotqa"] = hotpotqa(args.data, args.limit, args.out, Path(tmp),
                                          args.batch_size, args.every_question)
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps({k: v for k, v in result["hotpotqa"].items() if k != "runs"}))
        if args.night:
            result["night"] = night(args.night, args.night_workers, Path(tmp))
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps(result["night"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
