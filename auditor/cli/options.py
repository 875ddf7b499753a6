"""Options several commands share, spelled once so ``--config`` means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="settings file (default: ./audit.toml)")
]
StoreOpt = Annotated[Path | None, typer.Option(help="DuckDB results file")]
BaselineOpt = Annotated[str | None, typer.Option(
    help="gate against: last | last-passing | RUN_ID | none")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="also print every measure, cause and gate as tables")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
