"""The Streamlit dashboard: seven pages over the results store, read-only.

``command`` is the one way to start it (``auditor dashboard`` and docker compose use it);
``serving`` runs it for the length of a ``with`` block (the browser tests and the bench).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")


def command(store: Path, *, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The argv that serves the dashboard on ``address:port`` for the store at ``store``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", address, "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--", "--store", str(store),
    ]


@contextmanager
def serving(store: Path, timeout: float = 60) -> Iterator[str]:
    """The dashboard on a free loopback port until the block ends; yields its URL once
    healthy, and raises with the server's output if it exits or never gets there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "AUDITOR_STORE"}
    server = subprocess.Popen(command(store, port=port), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, timeout)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard at {url} did not become healthy in {timeout} s")
