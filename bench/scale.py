"""Throughput of `auditor run` at production volume, next to the bare search it wraps.

    .venv/bin/python bench/scale.py [--sizes 10000,100000] [--million] [--corpus PATH]
                                    [--backend embedded|elasticsearch] [--out bench/results]

Each size is a synthetic log from the SciFact fixture (its 50 records repeated under new
query ids, served lists and judgments kept, answers dropped), audited with the embedded
backend: bm25, hash encoder, trace and ablations off, depth 100. In one process, on the
same queries and the same index:

- ``search_many``: the backend's bare ``search_many`` over the log in the run's batches;
- ``auditor run``: the command itself (``auditor run --json``, in process: replay, metrics,
  store, corpus pass, verdict and reports), after one 500-query run that pays the imports.

Both are CPU time (``time.process_time``: every thread of the process, DuckDB's included),
since wall time moves with the other load on the machine. Targets (issue 12): run ≤ 2x
search_many; store ≤ 10% of the run (cProfile of the first size: time inside
``auditor.store`` from outside it); CPU per query within ±15% from the smallest size to the
largest. ``--corpus`` indexes another corpus holding the fixture's documents (the full
SciFact corpus: the bare search then costs what a larger index costs, while the audit's own
work per query stays the same). ``--backend elasticsearch`` runs both on the node at
``AUDITOR_ES_URL`` (index ``auditor-scale``; only this process's CPU is counted, the client's,
not the node's). ``--million`` also audits a 1M-line log in a child process and reads its
peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``; target < 2 GB). Results:
``<out>/scale.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, where bench/elasticsearch.py would
# shadow the elasticsearch client: it goes last instead (as in bench/elasticsearch.py)
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
from memory import SCIFACT, build_index, synthetic_log  # noqa: E402 (a sibling script, not a package)

ROOT = BENCH.parent
MILLION = 1_000_000
# Profile groups: (label, path fragment, function name or None for every function there).
GROUPS: tuple[tuple[str, str, str | None], ...] = (
    ("store (auditor/store)", "auditor/store/", None),
    ("backend.search_many", "auditor/backends/", "search_many"),
    ("metrics tables (batch_tables)", "auditor/metrics/per_query.py", "batch_tables"),
    ("log reading (read_log)", "auditor/logs.py", "read_log"),
    ("diagnose", "auditor/diagnose.py", "diagnose"),
    ("corpus pass", "auditor/corpus.py", "corpus_pass"),
    ("verdict and reports (publish_verdict)", "auditor/cli/run.py", "publish_verdict"),
)


def write_config(work: Path, index: Path, queries: int, es_index: str | None = None) -> Path:
    """The run's audit.toml over a fresh synthetic log of ``queries``: on the embedded
    ``index``, or on Elasticsearch index ``es_index`` (at ``AUDITOR_ES_URL``) when given."""
    work.mkdir(parents=True, exist_ok=True)
    log, qrels = synthetic_log(work, queries)
    config = work / "audit.toml"
    where = ['backend = "elasticsearch"', f'es_index = "{es_index}"'] if es_index else [
        f'index = "{index}"']
    config.write_text("\n".join([
        f'log = "{log}"', f'qrels = "{qrels}"', f'store = "{work / "audit.duckdb"}"',
        *where, 'encoder = "hash"', 'mode = "bm25"', "trace = false",
        "ablations = false", 'baseline = "none"', f'reports = "{work / "reports"}"',
    ]) + "\n")
    return config


def cpu(action: Callable[[], Any]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def bare_search(config: Path) -> tuple[float, int]:
    """CPU seconds of the backend's ``search_many`` over the log, in the run's batches."""
    from auditor.backends import open_backend
    from auditor.config import load_settings
    from auditor.replay import batched

    settings = load_settings(config)
    assert settings.log is not None
    queries = [json.loads(line)["query"] for line in settings.log.read_text().splitlines()]
    backend = open_backend(settings)
    backend.search_many(queries[:settings.batch_size], settings.mode, settings.depth)  # warm

    def search() -> None:
        for batch in batched(queries, settings.batch_size):
            backend.search_many(batch, settings.mode, settings.depth)

    return cpu(search), len(queries)


def auditor_run(config: Path) -> None:
    """``auditor run --json --config …`` in this process; stdout swallowed."""
    from auditor.cli.main import app

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            code = app(["run", "--json", "--config", str(config)], standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
    if code not in (0, 1, None):
        raise RuntimeError(f"auditor run exited {code}: {printed.getvalue()[-2000:]}")


def fresh(config: Path) -> Path:
    """The config again, with an empty store (each measured run starts from nothing)."""
    store = config.parent / "audit.duckdb"
    for path in (store, store.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    return config


def profile_shares(config: Path) -> dict[str, Any]:
    """Share of the run's profiled time in each group (time entered from outside the group,
    so nested calls count once) and the top functions by own time."""
    # CPU time, not wall: on a shared machine wall time charges other processes' load to
    # whatever the run was waiting in (DuckDB's threads count, as in ``cpu``)
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(auditor_run, fresh(config))
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]

    def member(key: tuple[str, int, str], fragment: str, name: str | None) -> bool:
        return fragment in key[0].replace(os.sep, "/") and (
            key[2] == name if name is not None else key[2] != "<module>")  # imports aside

    def outside(key: tuple[str, int, str], fragment: str, name: str | None) -> bool:
        """A caller that enters the group (``with store.connect()`` enters ``connect``
        through contextlib's ``next`` from inside the store: that is not an entry)."""
        return not member(key, fragment, name) and not key[0].endswith("contextlib.py") \
            and key[2] != "<built-in method builtins.next>"

    shares = {}
    for label, fragment, name in GROUPS:
        inside = 0.0
        for key, (_, _, _, cumulative, callers) in raw.items():
            if not member(key, fragment, name):
                continue
            if not callers:
                inside += cumulative
            inside += sum(c[3] for caller, c in callers.items()
                          if outside(caller, fragment, name))
        shares[label] = round(inside / total, 3)
    own = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:15]
    top = [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "own_share": round(v[2] / total, 3)}
           for k, v in own]
    return {"profiled_seconds": round(total, 2), "shares": shares, "top_own_time": top}


class StoreClock:
    """CPU time spent inside the store's public methods (outermost call only), counted by
    wrapping them on :class:`auditor.store.Store` for the measured run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.depth = 0

    @contextlib.contextmanager
    def installed(self) -> Any:
        from auditor.store import Store

        names = {name for cls in Store.__mro__ if cls.__module__.startswith("auditor.store")
                 for name, value in vars(cls).items()
                 if callable(value) and not name.startswith("_")}
        originals = {name: getattr(Store, name) for name in names}
        for name, method in originals.items():
            setattr(Store, name, self._timed(method))
        try:
            yield self
        finally:
            for name in names:
                delattr(Store, name)

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return method(*args, **kwargs)
            self.depth += 1
            started = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started
                self.depth -= 1
        return timed


def measure(config: Path) -> dict[str, Any]:
    search_s, queries = bare_search(config)
    with StoreClock().installed() as clock:
        run_s = cpu(lambda: auditor_run(fresh(config)))
    return {"queries": queries, "search_many_cpu_s": round(search_s, 2),
            "run_cpu_s": round(run_s, 2), "run_over_search": round(run_s / search_s, 2),
            "run_cpu_ms_per_query": round(1000 * run_s / queries, 3),
            "store_cpu_share": round(clock.seconds / run_s, 3)}


def million(directory: Path, index: Path) -> dict[str, Any]:
    """Peak RSS of `auditor run` over a 1M-line log, in a child process."""
    config = write_config(directory / "n1000000", index, MILLION)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AUDITOR_ES_URL", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "auditor.cli", "run", "--json", "--config",
                           str(config)], cwd=config.parent, env=env, capture_output=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"auditor run failed: {done.stderr.decode()[-2000:]}")
    replayed = json.loads(done.stdout)["counts"]["replayed"]
    if after.ru_maxrss <= before.ru_maxrss:
        raise RuntimeError("the child's peak RSS is hidden by an earlier, larger child")
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"queries": replayed, "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
            "wall_s": round(seconds, 1), "cpu_s": round(cpu_s, 1)}


def verdicts(results: list[dict[str, Any]], profile: dict[str, Any],
             big: dict[str, Any] | None) -> list[tuple[str, float, str, bool]]:
    """(ratio, value, target, met) for every target the issue sets."""
    out = [(f"run / search_many CPU at {r['queries']:,}", r["run_over_search"], "<= 2.0",
            r["run_over_search"] <= 2.0) for r in results]
    out.extend((f"store CPU share of the run at {r['queries']:,}", r["store_cpu_share"],
                "<= 0.10", r["store_cpu_share"] <= 0.10) for r in results)
    store = profile["shares"]["store (auditor/store)"]
    out.append((f"store share in the profile at {results[0]['queries']:,}", store, "<= 0.10",
                store <= 0.10))
    if len(results) > 1:
        flat = results[-1]["run_cpu_ms_per_query"] / results[0]["run_cpu_ms_per_query"]
        out.append((f"CPU per query {results[-1]['queries']:,} / {results[0]['queries']:,}",
                    round(flat, 3), "0.85-1.15", 0.85 <= flat <= 1.15))
    if big is not None:
        out.append(("peak RSS at 1M (MB)", big["peak_rss_mb"], "< 2048",
                    big["peak_rss_mb"] < 2048))
    return out


def chosen_backend(parser: argparse.ArgumentParser, backend: str) -> str | None:
    """The Elasticsearch index to search at ``AUDITOR_ES_URL``, or None for the embedded
    backend (the variable is then dropped, so nothing reaches a node by accident)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    if backend != "elasticsearch":
        os.environ.pop("AUDITOR_ES_URL", None)
        return None
    if not os.environ.get("AUDITOR_ES_URL"):
        parser.error("--backend elasticsearch needs AUDITOR_ES_URL (`make es-start` starts one)")
    return "auditor-scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="also a 1M-line log (slow)")
    parser.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl",
                        help="the index's corpus (default the fixture's 300 documents; "
                             "../shared/data/scifact holds all 5,183 the queries come from)")
    parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded",
                        help="elasticsearch: the node at AUDITOR_ES_URL (`make es-start` starts "
                             "one); the search's CPU counted is this process's (the client)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.million and args.backend == "elasticsearch":
        parser.error("--million runs on the embedded backend only")
    es_index = chosen_backend(parser, args.backend)
    with tempfile.TemporaryDirectory(prefix="auditor-scale-") as tmp:
        directory = Path(tmp)
        index = directory / "index"
        build_index(directory, args.corpus, es_index)
        configs = {size: write_config(directory / f"n{size}", index, size, es_index)
                   for size in sizes}
        auditor_run(write_config(directory / "warm", index, 500, es_index))  # imports, templates
        results = []
        for size in sizes:
            results.append(measure(configs[size]))
            print(json.dumps(results[-1]), flush=True)
        profile = profile_shares(configs[sizes[0]])
        print(json.dumps(profile, indent=1), flush=True)
        big = million(directory, index) if args.million else None
        if big is not None:
            print(json.dumps(big), flush=True)
    rows = verdicts(results, profile, big)
    width = max(len(name) for name, *_ in rows)
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>8}  target {target:<10} {'met' if met else 'NOT met'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(
        {"backend": args.backend, "corpus": str(args.corpus), "results": results,
         "profile": profile, "million": big,
         "targets": [{"ratio": n, "value": v, "target": t, "met": m} for n, v, t, m in rows]},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
