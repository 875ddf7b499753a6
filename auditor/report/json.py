"""The JSON report: the gathered report in its JSON form (``auditor report --format json``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.report.gather import Report


def render_json(report: Report) -> str:
    """The report's JSON form, indented; non-ASCII text kept as it is."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
