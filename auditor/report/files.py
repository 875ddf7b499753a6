"""Report files: each format written beside the others in a run's folder, and moved with
its link to the shared plotly.js kept valid."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from auditor.report.gather import Report, build_report
from auditor.report.html import plotly_asset, render_html
from auditor.report.json import render_json
from auditor.report.junit import render_junit
from auditor.report.markdown import render_markdown
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.compare import Comparison

ReportFormat = Literal["md", "html", "json", "junit"]
FILE_NAMES: dict[str, str] = {
    "md": "report.md", "html": "report.html", "json": "report.json", "junit": "junit.xml",
}
RENDERERS: dict[str, Callable[[Report], str]] = {
    "md": render_markdown, "html": render_html, "json": render_json, "junit": render_junit}


def write_reports(store: Store, run_id: str, directory: Path,
                  formats: Iterable[ReportFormat] = ("md", "html", "json", "junit"),
                  comparison: Comparison | None = None) -> dict[str, Path]:
    """Write each format's file into ``directory`` (created); returns format → path.
    ``comparison``: the verdict's, so the run is not compared again."""
    formats = list(formats)
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise ValueError(f"unknown report format {', '.join(unknown)}: use md, html, json, junit")
    directory.mkdir(parents=True, exist_ok=True)
    paths = {fmt: directory / FILE_NAMES[fmt] for fmt in formats}
    report = replace(build_report(store, run_id, comparison=comparison),
                     files={fmt: str(path) for fmt, path in paths.items()})
    for fmt, path in paths.items():
        if fmt == "html":
            text = render_html(report, plotly_src=asset_src(directory.parent, directory))
        else:
            text = RENDERERS[fmt](report)
        path.write_text(text, encoding="utf-8")
    return paths


def asset_src(root: Path, page_directory: Path) -> str:
    """The shared plotly.js under ``root``, as a URL relative to a page in
    ``page_directory`` (forward slashes, so it works from a browser on any system)."""
    asset = plotly_asset(root)
    return Path(os.path.relpath(asset, page_directory)).as_posix()


def move_html(page: Path, target: Path) -> None:
    """Move a report page, keeping its link to the shared plotly.js valid."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script src="([^"]*plotly-[^"/]*\.min\.js)"', text)
    if match:
        asset = (page.parent / match.group(1)).resolve()
        new = Path(os.path.relpath(asset, target.parent)).as_posix()
        text = text.replace(match.group(0), f'<script src="{new}"', 1)
    target.write_text(text, encoding="utf-8")
    page.unlink()
