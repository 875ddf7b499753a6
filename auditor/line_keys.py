"""A JSONL log line's key fields, read quickly: a sampled run's first pass
(:func:`auditor.logs.read_keys`) reads every line of a night's log for its id and stratum."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import AliasChoices, ValidationError

from auditor.records import LogKey


@dataclass(frozen=True, slots=True)
class Keyed:
    """A line the first pass accepted on its key: its id, and the line as ``keys`` read it
    where a stratum needs more fields than the id (else None: no object per line)."""

    query_id: str
    key: LogKey | None


@functools.cache
def key_reader(keys: type[LogKey]) -> Callable[[bytes], Keyed | None]:
    """A JSONL line read as ``keys``, or None when the check must fall to the whole record.

    msgspec parses the line: it skips the fields it is not asked for without building them,
    a fifth of the CPU of pydantic's parse of a 740-byte line, which is most of a first
    pass over a night's log. It accepts nothing pydantic would refuse: a line is None unless
    it is valid UTF-8 and JSON, its id a string or an integer (as ``QueryId`` converts it),
    its query a string that is not blank (as ``QueryText``); the stratum's fields, when
    ``keys`` has any, are validated by ``keys`` itself. Anything else, NaN included, goes to
    the whole record's path, which decides as a whole-log read does."""
    names = [name for field_name, info in keys.model_fields.items()
             for name in _json_names(field_name, info.validation_alias)]
    assert names[:2] == ["query_id", "query"], names
    attributes = [f"f{i}" for i in range(len(names))]
    struct = msgspec.defstruct("LineKey", [(a, Any, msgspec.UNSET) for a in attributes],
                               rename=dict(zip(attributes, names, strict=True)))
    parse = msgspec.json.Decoder(struct).decode
    stratum = keys is not LogKey

    def read(data: bytes) -> Keyed | None:
        try:
            found = parse(data)
        except (msgspec.MsgspecError, RecursionError):
            return None
        query_id, query = found.f0, found.f1
        if type(query_id) is int:
            query_id = str(query_id)
        if type(query_id) is not str or not query_id or type(query) is not str \
                or not query.strip() or not (data.isascii() or _utf8(data)):
            return None
        if not stratum:
            return Keyed(query_id, None)
        values = {name: value for name, value in zip(names, msgspec.structs.astuple(found),
                                                     strict=True) if value is not msgspec.UNSET}
        try:
            return Keyed(query_id, keys.model_validate(values))
        except ValidationError:
            return None

    return read


def _json_names(name: str, alias: Any) -> list[str]:
    """The JSON names a field is read under: its alias or its alias choices, else its name."""
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [alias] if isinstance(alias, str) else [name]


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
