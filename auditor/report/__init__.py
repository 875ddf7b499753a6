"""Reports of one run: Markdown for a pull request or chat, an HTML page with charts, JSON,
and JUnit XML with one test case per gate.

``gather`` reads everything a report shows once, into JSON-safe data; each format has its
own renderer (``markdown``, ``html``, ``json``, ``junit``) that only formats it, so the four
never disagree; ``files`` writes them beside each other.
"""

from auditor.report.files import FILE_NAMES, ReportFormat, asset_src, move_html, write_reports
from auditor.report.gather import Report, build_report, drift_sentence, run_summary, split_drift
from auditor.report.html import plotly_asset, render_html
from auditor.report.json import render_json
from auditor.report.junit import render_junit
from auditor.report.markdown import md_escape, render_markdown

__all__ = [
    "FILE_NAMES", "Report", "ReportFormat", "asset_src", "build_report", "drift_sentence",
    "md_escape", "move_html", "plotly_asset", "render_html", "render_json", "render_junit",
    "render_markdown", "run_summary", "split_drift", "write_reports",
]
