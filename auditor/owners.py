"""Which process owns a running run, and whether that process is still alive.

A run killed with SIGKILL (or by a power cut) never writes its final status: it stays
``running`` in the store. Each run records its owner (pid, host, and the process's start
time) so a reader can tell a live run from a dead one, and a resume can refuse to take over
a run whose process still works on it. The start time guards against pid reuse: a new
process with the same pid started later is not the owner.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), None when unknown or gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited: only its exit status is left
        return None
    return int(fields[19])  # field 22 of the whole line


def _boot_id() -> str | None:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None


def current_owner() -> dict[str, Any]:
    """This process, as stored in ``runs.owner``."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(),
            "start_ticks": _start_ticks(pid)}


def is_alive(owner: dict[str, Any] | None) -> bool:
    """True while the owner's process may still be working on the run.

    No owner (a run stored before owners were recorded) counts as gone. A process on
    another host cannot be checked from here: it counts as alive, so nothing takes its run
    away from it.
    """
    if not owner or not owner.get("pid"):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    if owner.get("boot_id") and _boot_id() and owner["boot_id"] != _boot_id():
        return False  # the machine rebooted since
    pid = int(owner["pid"])
    if owner.get("start_ticks") is not None and PROC.is_dir():
        return _start_ticks(pid) == owner["start_ticks"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "an unknown process"
    return f"process {owner.get('pid')} on {owner.get('host')}"
