"""The audit on a Ray cluster (``executor = "ray"``): :mod:`.driver` reads the log, shards
it by query id and stores what comes back; :mod:`.worker` is the actor that runs the local
executor's batch function; :mod:`.cluster` joins (or starts) Ray."""

from __future__ import annotations

from auditor.distributed.driver import run_distributed

__all__ = ["run_distributed"]
