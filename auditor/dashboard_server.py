"""Start and stop the Streamlit dashboard (``dashboards/app.py``) as a child process.

The auditor never imports the ``dashboards`` package: it starts Streamlit on the app's file
path, found without importing it. ``command`` is the one way to start it (docker compose
uses it); ``serve`` runs it in the foreground (``auditor dashboard``); ``serving`` runs it
for the length of a ``with`` block (the browser tests and the bench). The Streamlit child
never outlives its launcher: it gets SIGKILL from the kernel when the launcher dies
(``PR_SET_PDEATHSIG``, even when the launcher is SIGKILLed), and a launcher stopped with
SIGTERM stops it first (SIGTERM, then SIGKILL after 10 s: a Streamlit whose terminal is gone
was seen to hang in its SIGTERM handler).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def app_path() -> Path:
    """The dashboard's Streamlit script, located (not imported) among the installed
    packages: ``dashboards`` ships beside ``auditor`` (see pyproject.toml)."""
    spec = find_spec("dashboards")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the dashboards package is not installed beside auditor")
    return Path(spec.origin).resolve().with_name("app.py")


def command(store: Path, *, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The argv that serves the dashboard on ``address:port`` for the store at ``store``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", address, "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--", "--store", str(store),
    ]


def die_with_parent() -> None:
    """``preexec_fn``: ask the kernel to SIGKILL this child when its parent dies (Linux;
    elsewhere a no-op, and the launcher's own SIGTERM handler is what stops the child).
    SIGKILL: the dashboard only reads, so there is nothing to shut down gracefully."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start(store: Path, *, port: int, address: str = "127.0.0.1",
          **popen: object) -> subprocess.Popen:
    """The dashboard as a child that dies with this process."""
    return subprocess.Popen(command(store, port=port, address=address),
                            preexec_fn=die_with_parent, **popen)  # type: ignore[call-overload]


def stop(server: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate the server and wait for it; kill it if it does not go in ``timeout`` s."""
    if server.poll() is None:
        server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def serve(store: Path, *, port: int, address: str = "127.0.0.1") -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM; returns the server's exit code.
    Either signal stops the Streamlit child before this returns."""
    server = start(store, port=port, address=address)

    def on_term(signum: int, frame: object) -> None:
        server.terminate()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C ends the dashboard, not an error
        return 0
    finally:
        stop(server)
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def serving(store: Path, timeout: float = 60) -> Iterator[str]:
    """The dashboard on a free loopback port until the block ends; yields its URL once
    healthy, and raises with the server's output if it exits or never gets there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "AUDITOR_STORE"}
    server = start(store, port=port, env=env, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, timeout)
        yield url
    finally:
        stop(server)


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
