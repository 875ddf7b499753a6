"""The auditor's outputs on the bundled fixtures are the committed golden files (tests/golden).

Refactors must leave every number where it was; a change on purpose regenerates them with
`python -m tests.golden.capture --write` and says why in the commit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.golden.capture import GOLDEN, capture

pytestmark = pytest.mark.model


def _first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                return f"{path}.{key}: only in {'golden' if key in expected else 'output'}"
            found = _first_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            found = _first_difference(e, a, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items in golden, {len(actual)} now"
        return None
    return None if expected == actual else f"{path}: golden {expected!r}, now {actual!r}"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return capture(tmp_path_factory.mktemp("golden"))


def test_every_golden_file_is_produced(outputs: dict[str, Any]) -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(outputs)


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_output_matches_golden(outputs: dict[str, Any], name: str) -> None:
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    actual = json.loads(json.dumps(outputs[name]))
    assert _first_difference(golden, actual) is None, _first_difference(golden, actual)
