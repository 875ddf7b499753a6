"""A judgment list version's digest: the identity of its labels, by which a run reuses a
stored version instead of storing the same labels again."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIGESTED = ["query_id", "doc_id", "grade", "source", "iteration", "chunk_id", "query_hash",
            "text_hash", "note"]


def digest(labels: pa.Table) -> str:
    """Identity of a version's labels (not of when they were stored): the SHA-256 of each
    row's ``repr`` as a tuple of ``DIGESTED``, row after row. Stores hold these digests, so
    the bytes are fixed; a slice of plain rows gets them from Arrow's string kernels at once,
    any other slice row by row."""
    hasher = hashlib.sha256()
    for batch in labels.select(DIGESTED).to_batches(max_chunksize=65_536):
        plain = _plain_rows(batch)
        if plain is not None:
            hasher.update(plain)
            continue
        for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
            hasher.update(repr(row).encode("utf-8"))
    return hasher.hexdigest()


def _plain_rows(batch: pa.RecordBatch) -> bytes | None:
    """``b"".join(repr(row).encode() for row in batch)`` without a Python object per value,
    or None when a value is not plain (a string ``repr`` would escape or quote otherwise, a
    type other than string or integer). Written by hand: no library renders Python's repr,
    and row by row it was half of a sampled run's manifest."""
    parts: list[str | pa.Array] = ["("]  # literals and columns, joined in one Arrow call
    for number, column in enumerate(batch.columns):
        parts.append(", " if number else "")
        if column.null_count == len(column):
            parts.append("None")
        elif pa.types.is_string(column.type) and _plain(column):
            quoted = ["'", column, "'"]
            parts += quoted if not column.null_count else [
                pc.fill_null(pc.binary_join_element_wise(*quoted, ""), "None")]
        elif pa.types.is_integer(column.type):
            parts.append(pc.fill_null(pc.cast(column, pa.string()), "None"))
        else:
            return None
    parts.append(")")
    merged: list[str | pa.Array] = []
    for part in parts:  # adjacent literals as one
        if merged and isinstance(part, str) and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    rows = pc.binary_join_element_wise(*merged, "")
    if not isinstance(rows, pa.Array):  # every column null: one row's text, repeated
        return rows.as_py().encode() * batch.num_rows
    return _characters(rows)


def _plain(column: pa.StringArray) -> bool:
    """Every character of the column is printable ASCII but a quote or a backslash."""
    data = np.frombuffer(_characters(column), dtype=np.uint8)
    return not ((data < 0x20) | (data > 0x7E) | (data == 0x27) | (data == 0x5C)).any()


def _characters(strings: pa.StringArray) -> bytes:
    """The strings' bytes one after another, as Arrow holds them."""
    _, offsets, data = strings.buffers()
    if data is None:
        return b""
    bounds = np.frombuffer(offsets, dtype=np.int32)[strings.offset:strings.offset +
                                                    len(strings) + 1]
    return data.to_pybytes()[bounds[0]:bounds[-1]]
