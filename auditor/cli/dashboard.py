"""``dashboard``: the Streamlit pages on a results store (``demo`` opens them too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auditor.cli.options import ConfigOpt, StoreOpt
from auditor.cli.render import out
from auditor.config import ConfigError, load_settings


def dashboard(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8501,
    address: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Open the Streamlit dashboard on a results store (read-only)."""
    settings = load_settings(config, store=store)
    serve_dashboard(settings.store, port=port, address=address)


def serve_dashboard(store: Path, port: int, address: str = "127.0.0.1") -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM (it only reads the store)."""
    from auditor.dashboard_server import serve

    if not store.exists():
        raise ConfigError(f"no results store at {store}: run `auditor run` (or `auditor demo`) "
                          "first, or pass --store")
    out.print(f"dashboard on http://{address}:{port} (Ctrl-C stops it)", markup=False,
              highlight=False)
    serve(store.resolve(), port=port, address=address)  # its child dies with it
