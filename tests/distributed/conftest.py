"""One real local Ray cluster for the session (see ``ray_node``), stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.distributed.ray_node import AUTH, ray_cluster


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The cluster's address; this process holds its token while it runs (in-process runs
    join it with ``ray.init``)."""
    with pytest.MonkeyPatch.context() as patch, ray_cluster() as address:
        for name, value in AUTH.items():
            patch.setenv(name, value)
        yield address
