"""How much two busy processes slow each other on this machine: the ceiling of any 2-worker speedup.

    .venv/bin/python bench/cores.py [--rounds 3] [--out bench/results]

``distributed.py`` asks 2 Ray workers for ≥ 1.6x one worker on a 2-core machine. That needs
two processes to run side by side at ≥ 80% of the speed of one alone, before any of Ray's or
the audit's own costs. This measures that ratio for three kinds of work, each in one child
process alone, then in two at once (``torch`` and the encoder limited to one thread each, as
a Ray actor with ``num_cpus=1`` is):

- ``python``: a pure-Python loop (the audit's per-query Python: metrics rows, diagnosis);
- ``matmul``: single-threaded float32 matrix products in torch (the encoder's arithmetic);
- ``encode``: all-MiniLM-L6-v2 encoding the fixture's answer sentences (the audit's heaviest
  per-query work), the model loaded before the clock starts.

For each: the wall time alone, the wall time of the pair (both started together; the later
to finish), and the speedup the pair gives over running the two one after the other
(``2 x alone / pair``; 2.0 means the cores do not slow each other). CPU time per process
is also kept: a process that stalls on a shared cache or memory bus, or on a vCPU the host
gives to someone else, takes longer in wall time, and for cache stalls in CPU time too.
Results: ``<out>/cores.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("python", "matmul", "encode")
# What a child runs: the work's setup (outside the clock), then the work, then its CPU and
# wall seconds as JSON. Sized to ≈ 3-5 s alone here.
CHILD = r"""
import json, os, sys, time
kind = sys.argv[1]
if kind == "python":
    def work():
        total = 0
        for i in range(25_000_000):
            total += i * i % 7
        return total
elif kind == "matmul":
    import torch
    torch.set_num_threads(1)
    a = torch.rand(512, 512)
    for _ in range(20):
        a @ a  # the first products pay torch's own start
    def work():
        for _ in range(600):
            a @ a
else:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    torch.set_num_threads(1)
    from auditor.embed import MiniLMEncoder
    model = MiniLMEncoder()
    sentences = [line.strip() for line in open(sys.argv[2]) if line.strip()]
    model.encode(sentences[:8])  # the first batch pays torch's own start
    def work():
        model.encode(sentences)
print("ready", flush=True)
sys.stdin.readline()  # start together
cpu, wall = time.process_time(), time.perf_counter()
work()
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}))
"""


def sentences_file(directory: Path) -> Path:
    """The SciFact fixture's answer sentences (≈ 3 s of encoding here, alone)."""
    from auditor.sentences import split_sentences

    lines = (ROOT / "fixtures" / "scifact" / "log.jsonl").read_text().splitlines()
    answers = [json.loads(line).get("answer") or "" for line in lines]
    sentences = [s.text for answer in answers for s in split_sentences(answer)]
    path = directory / "sentences.txt"
    path.write_text("\n".join(sentences) + "\n")
    return path


def together(kind: str, copies: int, sentences: Path) -> list[dict[str, float]]:
    """Run ``copies`` children of ``kind``; start their work at the same moment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, kind, str(sentences)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env=env, cwd=ROOT) for _ in range(copies)]
    for child in children:
        if child.stdout is None or child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a {kind} child did not start")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"a {kind} child failed ({child.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def measure(kind: str, rounds: int, sentences: Path) -> dict[str, Any]:
    alone = [together(kind, 1, sentences)[0] for _ in range(rounds)]
    pairs = [together(kind, 2, sentences) for _ in range(rounds)]
    wall_alone = statistics.median(r["wall"] for r in alone)
    wall_pair = statistics.median(max(r["wall"] for r in pair) for pair in pairs)
    cpu_alone = statistics.median(r["cpu"] for r in alone)
    cpu_pair = statistics.median(r["cpu"] for pair in pairs for r in pair)
    return {"kind": kind, "wall_alone_s": round(wall_alone, 3),
            "wall_pair_s": round(wall_pair, 3), "cpu_alone_s": round(cpu_alone, 3),
            "cpu_each_in_pair_s": round(cpu_pair, 3),
            "pair_speedup": round(2 * wall_alone / wall_pair, 3),
            "cpu_inflation": round(cpu_pair / cpu_alone, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    load = {"before": os.getloadavg()[0]}  # other work on the machine skews every ratio
    with tempfile.TemporaryDirectory(prefix="auditor-cores-") as tmp:
        sentences = sentences_file(Path(tmp))
        results = [measure(kind, args.rounds, sentences) for kind in KINDS]
    load["after"] = os.getloadavg()[0]  # the pairs' own two processes count in this one
    for r in results:
        print(json.dumps(r))
    print(f"1-minute load average: {load['before']:.2f} before, {load['after']:.2f} after")
    for r in results:
        print(f"{r['kind']:<8} two at once give {r['pair_speedup']:.2f}x one "
              f"(CPU per process x{r['cpu_inflation']:.2f}); 2 Ray workers >= 1.6x needs "
              f">= 1.6 here {'(possible)' if r['pair_speedup'] >= 1.6 else '(NOT possible)'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cores.json").write_text(json.dumps({"results": results, "load": load},
                                                    indent=1) + "\n")


if __name__ == "__main__":
    main()
