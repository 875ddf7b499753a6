"""A real local Ray cluster for the distributed tests: `ray start --head --block` on
127.0.0.1 plus one worker node (`ray start --address`), one CPU each and a 100 MB object
store, each in its own process group and under its own temp directory, so stopping them
ends exactly the processes they started (never `ray stop`, which ends every Ray process on
the machine)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT

OBJECT_STORE_BYTES = 100 * 1024 * 1024
# Ray ≥ 2.59 authenticates every client of a cluster with a token: this session's, given
# to the nodes, the CLI runs and (by the fixture) this process through the environment
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env() -> dict[str, str]:
    """Workers import this checkout's auditor (the tests may run from a worktree)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0",
            "TOKENIZERS_PARALLELISM": "false", **AUTH}


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def ray_cluster() -> Iterator[str]:
    """The cluster's address (127.0.0.1:port) while it runs."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # unix socket paths are short
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
              f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
    nodes = [start([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                    f"--temp-dir={temp}", *common])]
    try:
        wait_for(port, nodes[0])
        nodes.append(start([ray, "start", f"--address=127.0.0.1:{port}", *common]))
        time.sleep(5)  # both raylets register with the GCS
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            stop(node)
        leftovers(str(temp))
        shutil.rmtree(temp, ignore_errors=True)  # session logs and sockets


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=ray_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(port: int, head: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(port):
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed: {head.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("ray start did not answer in time")
        time.sleep(0.5)


def stop(node: subprocess.Popen) -> None:
    """End a node and everything in its process group (GCS, raylet, workers)."""
    group = os.getpgid(node.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        try:
            node.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def processes() -> Iterator[tuple[int, str]]:
    """(pid, command line) of every process this user can see."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue


def leftovers(temp: str) -> None:
    """Kill any process of this cluster that left the process groups (by its temp dir)."""
    time.sleep(1)
    for pid, command in processes():
        if temp in command:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def actor_pids(name: str) -> list[int]:
    """Processes whose title Ray set to ``ray::<name>`` (an actor, busy or idle)."""
    return [pid for pid, command in processes() if command.startswith(f"ray::{name}")]
