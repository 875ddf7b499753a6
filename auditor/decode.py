"""Decoding input bytes into values, with every defect named.

The one place where the readers (logs, qrels, TREC runs, corpora, spans) turn bytes into
text and text into values. A defect in one record comes back as a ``Defect`` (the reader
quarantines that record, naming the field); nothing here raises for bad data (only for a
file that cannot be opened), and nothing is repaired silently: a line that is not UTF-8 is
said to be so, not replaced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import InputError

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 64  # nesting beyond this is a defect: no record of ours nests past 10 levels
GRADE_MIN, GRADE_MAX = -1000, 1000  # judgment grades (trec_eval's are small integers)
RAW_LIMIT = 2_000  # characters of a bad record kept for the user to inspect
CSV_FIELD_LIMIT = 16 * 2**20  # characters in one CSV cell (Python's default is 131,072)
_SCALARS = frozenset((str, int, bool, type(None)))


@dataclass(frozen=True, slots=True)
class Defect:
    """Why a record cannot be accepted: the field it concerns and a reason."""

    field: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    """A record that is not a retrieval (e.g. an LLM span): counted, never quarantined."""

    kind: str


def lines(path: Path, wanted: Callable[[int], bool] | None = None
          ) -> Iterator[tuple[int, str, Defect | None]]:
    """(line number, text, defect) for each line (each ``wanted`` one), decoded as UTF-8 one
    line at a time.

    A UTF-8 byte order mark opening the file is dropped. A line that is not valid UTF-8
    comes with a ``Defect`` saying where, and its text with the bad bytes replaced (for
    showing the user only). Line ends are kept, as ``open()`` keeps them.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    with handle:
        for number, data in enumerate(handle, start=1):
            if wanted is None or wanted(number):  # the others are not even decoded
                yield number, *line(number, data)


def line(number: int, data: bytes) -> tuple[str, Defect | None]:
    """One line of :func:`lines`: its text and its defect."""
    if number == 1 and data.startswith(BOM):
        data = data[len(BOM):]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "replace"), invalid_utf8(exc, exc.start)


def invalid_utf8(exc: UnicodeDecodeError, column: int) -> Defect:
    """The defect of undecodable bytes; ``column`` is their 0-based offset in the line."""
    bad = " ".join(f"0x{byte:02x}" for byte in exc.object[exc.start:exc.end])
    return Defect("(record)", f"invalid UTF-8: byte {bad} at column {column + 1} is not "
                              "text (the line was not accepted, not repaired)")


def parse_json(text: str) -> Any:
    """The JSON value of ``text``, or a ``Defect``: invalid JSON, nesting too deep for
    Python to parse, or an integer with more digits than Python converts."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return Defect("(record)", f"invalid JSON: {json_problem(exc)}")
    except RecursionError:
        return Defect("(record)", f"JSON nested too deeply (more than {MAX_DEPTH} levels)")
    except ValueError as exc:  # an integer of more than 4,300 digits
        return Defect("(record)", f"invalid JSON: {str(exc).split(':')[0]}")


def json_problem(exc: json.JSONDecodeError) -> str:
    """``Unterminated string starting at column 12``: the parser's words and where (its own
    messages may end in "at", which is not repeated)."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def free_values(values: dict[str, Any], prefix: str = "") -> Defect | None:
    """The first defect among values no schema constrains (metadata, extra columns):
    nesting deeper than ``MAX_DEPTH`` or a number that is not finite (NaN, Infinity, 1e400).
    The walk checks each float itself: searching the raw line for text that could spell a
    non-finite number first cost more than the walk (a regex over the whole line)."""
    for value in values.values():
        if type(value) not in _SCALARS:
            break
    else:
        return None  # the common case, kept cheap: flat text and numbers
    names = {key: f"{prefix}{key or repr(key)}" for key in values}  # an empty key shows as ''
    stack = [(names[key], names[key], value, 1) for key, value in values.items()]
    while stack:
        top, where, value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return Defect(where, f"{value} is not a finite number")
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return Defect(top, f"nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((top, f"{where}.{key}", item, depth + 1) for key, item in items)
    return None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and dicts nest deeper than ``limit`` (walks without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def grade(text: str) -> int | Defect:
    """A judgment grade: an integer (or integral number) within GRADE_MIN..GRADE_MAX."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return Defect("grade", f"grade {text[:40]!r} is not a number")
        if not math.isfinite(number):
            return Defect("grade", f"grade {text[:40]!r} is not a finite number")
        value = int(number)
    if not GRADE_MIN <= value <= GRADE_MAX:
        return Defect("grade", f"grade {text[:40]} is outside {GRADE_MIN}..{GRADE_MAX}")
    return value


def finite(text: str) -> float | None:
    """``text`` as a finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
