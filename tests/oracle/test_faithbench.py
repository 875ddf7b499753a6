"""FaithBench's human labels read by bench/faithbench.py (marker ``data``: needs
../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.core.test_evidence import _bench


@pytest.mark.data
def test_faithbench_labels_and_halves(shared_data: Path) -> None:
    path = shared_data / "faithbench" / "samples.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    bench = _bench()
    sources, samples, items, odd = bench.load(path)
    assert (len(sources), len(samples)) == (75, 750)
    assert odd["unwanted_uncovered"] == 0  # every Unwanted span lands on some sentence
    assert 0.1 < np.mean([item.unwanted for item in items]) < 0.4
    halves: dict[str, set[str]] = {}
    for sample in samples:
        halves.setdefault(bench.article_key(sources[sample.source]), set()).add(sample.half)
    assert all(len(h) == 1 for h in halves.values())  # no article straddles the halves
    assert len(halves) == 61 and {"A", "B"} == set().union(*halves.values())
    # a summary with an Unwanted span has an unsupported sentence unless the span sits in a
    # skipped fragment (FaithBench sometimes marks a "Here is a summary:" lead-in)
    flagged = sum(any(items[k].unwanted for k in s.items) for s in samples)
    assert sum(s.unwanted for s in samples) - odd["unwanted_in_skipped_sentence"] <= flagged
