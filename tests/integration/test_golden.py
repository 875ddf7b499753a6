"""The auditor's outputs on the bundled fixtures are the committed golden files (tests/golden).

Refactors must leave every number where it was; a change on purpose regenerates them with
`python -m tests.golden.capture --write` and says why in the commit.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.golden.capture import GOLDEN, capture

pytestmark = pytest.mark.model


# Golden floats are rounded to 6 decimals; a value that moved by the last float32 bits (a
# vector embedded in another batch, a centroid reduced on another thread count) may round
# to the neighbouring 6th decimal, so equal means within two of those steps
FLOAT_TOLERANCE = 2e-6


def _json_text(value: Any) -> Any:
    """Evidence and map positions stored as JSON text, parsed so their floats compare
    with the tolerance; other text as it is."""
    if isinstance(value, str) and value.startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    expected, actual = _json_text(expected), _json_text(actual)
    if isinstance(expected, float) and type(actual) in (float, int) and math.isclose(
            expected, actual, rel_tol=0.0, abs_tol=FLOAT_TOLERANCE):
        return None
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
