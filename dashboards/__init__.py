"""The Streamlit dashboard: seven pages over the results store, read-only.

``command`` is the one way to start it (``auditor dashboard`` and docker compose use it).
"""

from __future__ import annotations

import sys
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
