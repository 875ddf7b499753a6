"""The JSON report: the gathered data as it is (``auditor report --format json``)."""

from __future__ import annotations

import json
from typing import Any


def render_json(data: dict[str, Any]) -> str:
    """``data`` from ``build_report``, already JSON-safe."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

