"""Joining a Ray cluster (``ray_address``) or starting Ray inside the run, and leaving it.

An address that does not answer is one sentence before anything is stored: Ray itself
would retry for a minute and then print a traceback.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from auditor.config import AuditSettings
from auditor.errors import ConfigError

CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORT = 6379  # `ray start --head` listens here (the GCS)


def host_port(address: str) -> tuple[str, int]:
    """``host:port`` (optionally ``ray://`` or ``ray-head``) as a host and a port."""
    plain = address.removeprefix("ray://").strip().rstrip("/")
    host, _, port = plain.rpartition(":")
    if not host:
        return plain, DEFAULT_PORT
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"ray_address {address!r} is not host:port (e.g. ray-head:6379)"
                          ) from None


def check_reachable(address: str) -> None:
    """Refuse an address nothing listens on, in one sentence."""
    host, port = host_port(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
            "`ray start --head` (or the compose file's ray-head service), or leave out "
            "--ray-address to run Ray inside this process") from None


@contextmanager
def connected(settings: AuditSettings) -> Iterator[None]:
    """Ray, initialised for this run unless the caller already did (tests, notebooks)."""
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if settings.ray_address:
        check_reachable(settings.ray_address)
        ray.init(address=settings.ray_address, logging_level=logging.WARNING,
                 log_to_driver=False)
    else:
        ray.init(num_cpus=settings.workers, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
