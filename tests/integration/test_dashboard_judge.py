"""The Judge page (AppTest): five pairs judged from the pooled queue are stored with rater
and time in one new version of the run's list (the session's), the run's judged@10 rises
accordingly when it is re-scored against it, and "finish" makes the next grade open
another version."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from auditor.judging import Selection
from auditor.rescore import rescore
from auditor.store import Store

from .test_audit import auditor, write_config

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    write_config(tmp_path)
    assert auditor("index", "build", cwd=tmp_path).returncode == 0
    done = auditor("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return Store(tmp_path / "audit.duckdb")


def test_five_pairs_judged_from_the_queue(store: Store, monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_STORE", str(store.path))
    run_id = store.runs()[0]["run_id"]
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("views/judge.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.button(key="grade_1").disabled  # no rater yet: nothing can be written
    at.text_input(key="rater").set_value("tester").run()
    shown = []
    for _ in range(5):
        shown.append((at.text[0].value, at.subheader[1].value))
        at.button(key="grade_1").click().run()
        assert not at.exception, [e.message for e in at.exception]
    assert len(set(shown)) == 5  # each grade moves the queue on
    latest = store.list_version("qrels")
    assert latest.version == 2  # one version for the session, not one per grade
    assert latest.origin.endswith("by tester")
    labels = [r for r in store.list_labels("qrels", 2).to_pylist()
              if r["source"] == "human:tester"]
    assert len(labels) == 5 and all(r["grade"] == 1 and r["labeled_at"] for r in labels)
    assert store.list_version("qrels", 1).labels + 5 == latest.labels
    assert "into qrels@2" in at.get("progress")[0].proto.text

    at.button(key="finish").click().run()
    at.button(key="grade_0").click().run()
    at.button(key="grade_0").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [v.labels for v in store.list_versions("qrels")] == [
        latest.labels - 5, latest.labels, latest.labels + 2]

    at.toggle(key="judge_agreement").set_value(True).run()  # the agreement panel
    assert not at.exception, [e.message for e in at.exception]
    assert any("Krippendorff's α" in m.value for m in at.markdown)

    before = {m.metric: m for m in rescore(store, run_id, "qrels@1").metrics}
    after = {m.metric: m for m in rescore(store, run_id, "qrels@2",
                                          Selection("all")).metrics}
    assert after["judged@10"].rescored > before["judged@10"].rescored
