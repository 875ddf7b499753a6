"""The Elasticsearch node a test session talks to.

``AUDITOR_ES_URL`` names an external node (docker compose, a CI service) that is used as is.
Without it, ``scripts/elasticsearch.sh`` starts a throwaway node for the session and stops
it at the end, unless a node was already running before the session (then it is reused and
left running, as the developer started it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "elasticsearch.sh"
START_TIMEOUT_S = 900  # the first start fetches ~130 MB with Maven
STOP_TIMEOUT_S = 120


class NodeUnavailable(RuntimeError):
    """No Elasticsearch node could be started; the message says why."""


def node_required() -> bool:
    """True when a node that cannot start must fail the tests instead of skipping them."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get("AUDITOR_REQUIRE_ES") == "1"


def _script(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # A session of its own: a Ctrl-C meant for pytest must not kill the script half-way
    # (it would leave a node behind); we forward a SIGTERM instead and let it clean up.
    process = subprocess.Popen(
        [str(SCRIPT), command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _stop() -> None:
    result = _script("stop", STOP_TIMEOUT_S)
    if result.returncode != 0:
        raise NodeUnavailable(f"scripts/elasticsearch.sh stop failed: {result.stderr.strip()}")


def _already_running() -> bool:
    return _script("status", 60).returncode == 0


@contextmanager
def elasticsearch_url() -> Iterator[str]:
    """The URL of a node: AUDITOR_ES_URL untouched, else a node started (and then stopped)."""
    external = os.environ.get("AUDITOR_ES_URL")
    if external:
        yield external
        return
    if not SCRIPT.is_file():
        raise NodeUnavailable(f"{SCRIPT} is missing: set AUDITOR_ES_URL to a running node")
    reused = _already_running()
    try:
        result = _script("start", START_TIMEOUT_S)
    except BaseException:
        if not reused:
            _stop()
        raise
    if result.returncode != 0:
        if not reused:
            _stop()
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = next((ln for ln in reversed(lines) if ln.startswith("error:")), None)
        raise NodeUnavailable(reason or (lines[-1] if lines else "scripts/elasticsearch.sh failed"))
    url = result.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        if not reused:
            _stop()
