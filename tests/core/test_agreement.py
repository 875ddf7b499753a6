"""Agreement numbers checked against independent implementations: scikit-learn's
``cohen_kappa_score`` and the ``krippendorff`` package (test-only dependencies)."""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from auditor.agreement import agreement, cohen_kappa, krippendorff_alpha
from auditor.judging import Selection, import_qrels
from auditor.store import Store

GRADES = st.integers(min_value=0, max_value=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(GRADES, GRADES), min_size=2, max_size=40))
def test_cohen_kappa_matches_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    for weights in (None, "linear", "quadratic"):
        ours = cohen_kappa(first, second, weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            theirs = cohen_kappa_score(first, second, weights=weights,
                                       labels=sorted(set(first) | set(second))
                                       if weights is None else list(range(0, 4)))
        if ours is None:  # chance agreement is total: sklearn gives nan (or 0/0 warnings)
            assert np.isnan(theirs) or len(set(first) | set(second)) == 1
        else:
            assert ours == pytest.approx(theirs, abs=1e-9), weights


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), GRADES), min_size=3, max_size=3),
                min_size=2, max_size=30))
def test_krippendorff_alpha_matches_the_package(units: list[list[int | None]]) -> None:
    present = [[g for g in unit if g is not None] for unit in units]
    pairable = [u for u in present if len(u) >= 2]
    values = {g for u in pairable for g in u}
    if len(values) < 2:  # the package divides by zero here; we say "not evaluated"
        assert krippendorff_alpha(present, "ordinal") is None
        return
    data = np.array([[np.nan if g is None else g for g in unit] for unit in units],
                    dtype=float).T  # raters x units
    for level in ("nominal", "ordinal", "interval"):
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level,
                                    value_domain=sorted({g for u in present for g in u}))
        assert krippendorff_alpha(present, level) == pytest.approx(theirs, abs=1e-9), level


def test_the_report_names_raters_disagreements_and_distributions(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    files = {"alice": "q1 0 a 2\nq1 0 b 0\nq2 0 c 1\nq3 0 d 3\n",
             "bob": "q1 0 a 2\nq1 0 b 1\nq2 0 c 1\nq3 0 d 0\n"}
    for rater, text in files.items():
        path = tmp_path / f"{rater}.trec"
        path.write_text(text)
        import_qrels(store, path, name="pool", source=f"human:{rater}", merge=True)
    report = agreement(store, "pool")
    assert report.raters == ("human:alice", "human:bob") and report.items == 4
    assert [(p.query_id, p.doc_id) for p in report.disagreements] == [("q3", "d"), ("q1", "b")]
    assert report.distributions == {"human:alice": {0: 1, 1: 1, 2: 1, 3: 1},
                                    "human:bob": {0: 1, 1: 2, 2: 1}}
    (kappa,) = report.kappas
    assert kappa.n == 4 and kappa.kappa == pytest.approx(cohen_kappa_score(
        [2, 0, 1, 3], [2, 1, 1, 0]))
    one = agreement(store, "pool", Selection(policy="rater:alice"))
    assert one.kappas == [] and one.alpha["ordinal"] is None  # one rater: not evaluated
