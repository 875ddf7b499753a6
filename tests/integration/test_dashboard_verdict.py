"""The dashboard says what the stored verdict says: passed, failed or not evaluated (with the
reason), a baseline and deltas only against the comparable baseline the verdict stored (none
for ``--baseline none``, none between unrelated query sets), the queries behind the gated
metrics, drift apart from the failure causes, runs grouped by what makes them comparable,
latencies labelled for what they measure, and a run's shown status (e.g. interrupted).

Each test changes a copy of the two-night fixture store the way a real store would look,
then runs the pages headless (``AppTest``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb

from auditor.cases import DRIFT
from auditor.owners import current_owner
from auditor.store import Store
from dashboards import data
from tests.integration import test_dashboard as shared
from tests.integration.test_dashboard import explorer, links, markdown, store_copy

app = shared.app  # the fixture: a fresh headless session on the (copied) fixture store


def columns(path, table: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            [table]).fetchall()}


def deltas(at) -> list[str]:
    """The change shown on each headline card ('' when none)."""
    return [m.proto.delta for m in at.metric if m.proto.delta]


def config_with(nightly_store, run_id: str, **changes) -> str:
    config = Store(nightly_store.path).run(run_id)["config"]
    return json.dumps({**config, **changes})


def no_verdict_history(nightly_store, run_id: str) -> list[tuple[str, list]]:
    """SQL that forgets the run's stored verdicts (a store written before they were kept)."""
    if "verdict_id" not in columns(nightly_store.path, "verdicts"):
        return []
    return [("DELETE FROM verdicts WHERE run_id = ?", [run_id])]


def not_evaluated_gates(nightly_store, run_id: str, reason: str) -> list[tuple[str, list]]:
    """SQL that makes the run's relative gates 'not evaluated' (no baseline), as stored by
    this auditor or by an older one (passed, without a value)."""
    sql = [("UPDATE gates SET passed = TRUE, value = NULL, baseline_run_id = NULL, reason = ? "
            "WHERE run_id = ? AND kind = 'max_drop'", [reason, run_id]),
           ("DELETE FROM comparisons WHERE run_id = ?", [run_id]),
           ("UPDATE runs SET baseline_run_id = NULL, gate_status = 'passed' WHERE run_id = ?",
            [run_id])]
    if "status" in columns(nightly_store.path, "gates"):
        sql.append(("UPDATE gates SET status = 'not_evaluated' WHERE run_id = ? AND "
                    "kind = 'max_drop'", [run_id]))
    return sql + no_verdict_history(nightly_store, run_id)


# the banner and the baseline ---------------------------------------------------------------
def test_first_run_is_not_evaluated_with_its_reason_and_no_deltas(app, nightly_store):
    at = app(run=nightly_store.baseline_run_id)
    banner = at.warning[0].value
    assert "Gates not evaluated" in banner and "not a pass" in banner
    assert not at.success and not at.error
    skipped = [g for g in Store(nightly_store.path).gates(nightly_store.baseline_run_id)
               if g["kind"] == "max_drop"]
    assert skipped and all(g["reason"] in markdown(at) for g in skipped)
    assert deltas(at) == []
    assert any("No comparable baseline, so no change is shown" in c.value for c in at.caption)


def test_run_made_with_baseline_none_shows_no_baseline(app, nightly_store, monkeypatch,
                                                       tmp_path):
    """An earlier run of the same backend, mode, level and log exists, but the run was made
    with ``--baseline none``: no baseline, no deltas, the reason said."""
    run = nightly_store.run_id
    assert deltas(app())  # as stored: the run was gated against its baseline
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("UPDATE runs SET config = ? WHERE run_id = ?",
                [config_with(nightly_store, run, baseline=None), run]),
               *not_evaluated_gates(nightly_store, run, "recall@10: no baseline run to "
                                                        "compare with yet"))
    at = app()
    assert "Gates not evaluated" in at.warning[0].value
    assert "--baseline none" in at.warning[0].value.replace("\\", "")
    assert deltas(at) == []
    assert not [m for m in at.markdown if "Largest change for the worse" in m.value]
    assert not any("Largest change" in c.value for c in at.caption)


def test_stored_baseline_sharing_no_query_is_not_compared(app, nightly_store, monkeypatch,
                                                          tmp_path):
    """An older store whose verdict compared the run with a baseline of other queries: no
    deltas and the reason; Compare warns and colours nothing better or worse."""
    base, run = nightly_store.baseline_run_id, nightly_store.run_id
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("UPDATE query_results SET query_id = 'other-' || query_id WHERE run_id = ?",
                [base]), *no_verdict_history(nightly_store, run))
    at = app()
    assert deltas(at) == []
    text = "\n".join(c.value for c in at.caption).replace("\\", "")
    assert f"the stored baseline {base} shares 0% of this run's queries (needs 50%)" in text
    at = app("compare")
    warning = at.warning[0].value.replace("\\", "")
    assert "Not a comparable pair: the runs share 0% of the current run's queries" in warning


def test_latest_of_several_verdicts_drives_the_banner(app, nightly_store, monkeypatch,
                                                      tmp_path):
    run = nightly_store.run_id
    now = datetime.now(UTC)
    reason = "newest passing run shares 0% of queries (needs 50%)"
    sql = [("CREATE TABLE IF NOT EXISTS verdicts (verdict_id VARCHAR, run_id VARCHAR, "
            "created_at TIMESTAMPTZ, gate_status VARCHAR, baseline_run_id VARCHAR, "
            "baseline_reason VARCHAR, warnings JSON, gates JSON)", []),
           *not_evaluated_gates(nightly_store, run, f"recall@10: {reason}"),
           ("INSERT INTO verdicts BY NAME SELECT '901' AS verdict_id, ? AS run_id, "
            "? AS created_at, 'failed' AS gate_status, ? AS baseline_run_id, '[]' AS warnings, "
            "'[]' AS gates",
            [run, now - timedelta(hours=1), nightly_store.baseline_run_id]),
           ("INSERT INTO verdicts BY NAME SELECT '902' AS verdict_id, ? AS run_id, "
            "? AS created_at, 'not_evaluated' AS gate_status, ? AS baseline_reason, "
            "? AS warnings, '[]' AS gates",
            [run, now, reason, json.dumps(["only 12 of 50 queries are judged"])])]
    path = store_copy(nightly_store, monkeypatch, tmp_path, *sql)
    at = app()
    banner = at.warning[0].value.replace("\\", "")
    assert "Gates not evaluated" in banner and reason in banner
    assert any("only 12 of 50 queries are judged" in w.value.replace("\\", "")
               for w in at.warning)
    assert any("The latest of 2 verdicts" in c.value for c in at.caption)
    assert deltas(at) == []
    picker = at.selectbox(key="run")
    assert any("not evaluated" in label for label in picker.options)
    assert data.runs(data.source(path)).set_index("run_id").at[run, "gate_status"] == \
        "not_evaluated"


# queries to look at --------------------------------------------------------------------------
def test_queries_to_look_at_cover_every_gated_metric(app, nightly_store):
    """Both gates failed: each gated metric gets its heading, and a metric whose worst
    queries were already listed says so rather than "every query is best"."""
    text = markdown(app())
    for metric in ("ndcg@10", "recall@10"):
        assert f"{metric}** · :red[gate failed]" in text
    assert "Every judged query" not in text


def test_queries_to_look_at_follow_the_failing_gated_metric(app, nightly_store, monkeypatch,
                                                            tmp_path):
    """Only the nDCG gate failed and every recall@10 is 1: the Overview still lists the
    queries whose nDCG dropped most, with links."""
    run, base = nightly_store.run_id, nightly_store.baseline_run_id
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("DELETE FROM gates WHERE run_id = ? AND metric = 'recall@10'", [run]),
               ("UPDATE metrics SET value = 1 WHERE run_id = ? AND metric = 'recall@10'",
                [run]))
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        worst = con.execute(
            "SELECT m.query_id FROM metrics m JOIN metrics b ON b.query_id = m.query_id AND "
            "b.metric = m.metric AND b.run_id = ? WHERE m.run_id = ? AND m.metric = "
            "'ndcg@10' ORDER BY m.value - b.value, m.query_id LIMIT 1", [base, run]).fetchone()[0]
    at = app()
    text = markdown(at)
    assert "ndcg@10** · :red[gate failed]" in text
    assert any("Largest change for the worse in ndcg@10" in c.value.replace("\\", "")
               for c in at.caption)
    assert worst in {link["query"] for link in links(at, "trace")}
    assert "Every judged query" not in text


# drift -------------------------------------------------------------------------------------
def drifted_queries(nightly_store) -> set[str]:
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        return {row[0] for row in con.execute(
            "SELECT DISTINCT query_id FROM diagnoses WHERE run_id = ? AND cause = ?",
            [nightly_store.run_id, DRIFT]).fetchall()}


def test_explorer_filters_drift_apart_from_causes(app, nightly_store):
    drifted = drifted_queries(nightly_store)
    assert drifted
    at = app("queries")
    assert DRIFT not in at.multiselect(key="q_causes").options
    table = explorer(at).value
    assert not table["causes"].fillna("").str.contains(DRIFT).any()
    assert set(table.loc[table["drifted"], "query_id"]) == drifted
    at.selectbox(key="q_drift").set_value("drifted").run()
    assert set(explorer(at).value["query_id"]) == drifted
    at.selectbox(key="q_drift").set_value("not drifted").run()
    assert not set(explorer(at).value["query_id"]) & drifted


def test_trace_and_detail_show_drift_apart(app, nightly_store):
    query = sorted(drifted_queries(nightly_store))[0]
    at = app("trace", query=query)
    caption = next(c.value for c in at.caption if "causes of failure:" in c.value)
    failures, _, drift = caption.partition(" · drift:")
    assert DRIFT not in failures
    assert "production served different results than the index returns today" in drift
    at = app("queries", query=query)
    assert any("Drift, not a failure" in i.value for i in at.info)
    assert not [e for e in at.expander if e.label.startswith(DRIFT)]


# grouping, latency, status ---------------------------------------------------------------------
def adhoc_run(nightly_store, run_id: str = "adhoc-run", status: str = "complete",
              **config) -> tuple[str, list]:
    """SQL adding a later run like the nightly one, with other config (e.g. another log)."""
    return ("INSERT INTO runs SELECT * REPLACE (? AS run_id, started_at + INTERVAL 1 DAY AS "
            "started_at, ? AS status, ? AS config, NULL AS gate_status, NULL AS "
            "baseline_run_id) FROM runs WHERE run_id = ?",
            [run_id, status, config_with(nightly_store, nightly_store.run_id, **config),
             nightly_store.run_id])


def test_runs_are_grouped_by_backend_mode_level_and_log(app, nightly_store, monkeypatch,
                                                        tmp_path):
    path = store_copy(nightly_store, monkeypatch, tmp_path,
                      adhoc_run(nightly_store, log="/elsewhere/other.jsonl"))
    at = app()
    groups = at.selectbox(key="run_group")
    assert len(groups.options) == 2 and "other.jsonl" in groups.value
    assert at.selectbox(key="run").options and len(at.selectbox(key="run").options) == 1
    nightly = next(g for g in groups.options if "log.jsonl" in g)
    assert "bm25" in nightly and "doc level" in nightly
    groups.set_value(next(g for g in data.runs(data.source(path))["group"]
                          if "log.jsonl" in g)).run()
    assert not at.exception
    assert at.selectbox(key="run").value == nightly_store.run_id
    assert len(at.selectbox(key="run").options) == 2
    src = data.source(path)
    assert set(data.comparable(src, nightly_store.run_id)["run_id"]) == {
        nightly_store.run_id, nightly_store.baseline_run_id}
    assert set(data.trend(src, nightly_store.run_id, ("recall@10",))["run_id"]) == {
        nightly_store.run_id, nightly_store.baseline_run_id}
    at = app("compare", run="adhoc-run")
    assert "Not a comparable pair" in at.warning[0].value
    # another log of the same file name is another group, named by its whole path
    path = store_copy(nightly_store, monkeypatch, tmp_path,
                      adhoc_run(nightly_store, log="/elsewhere/log.jsonl"))
    named = set(data.runs(data.source(path))["group"])
    assert len(named) == 2 and any("/elsewhere/log.jsonl" in g for g in named)
    at = app("compare", run="adhoc-run")
    assert "Not a comparable pair" in at.warning[0].value
    assert all("·" in label for label in at.selectbox(key="cmp_base_adhoc-run").options)


def test_explorer_labels_latency_and_leaves_unmeasured_blank(app, nightly_store, monkeypatch,
                                                             tmp_path):
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("UPDATE query_results SET replay_latency_ms = NULL WHERE run_id = ?",
                [nightly_store.run_id]))
    at = app("queries")
    table = explorer(at)
    assert (table.value["replay_latency_ms"] == "").all()  # blank, not "None"
    assert table.value["served_latency_ms"].str.fullmatch(r"[\d,]+\.\d").all()
    config = json.loads(table.proto.columns)
    assert config["replay_latency_ms"]["label"] == "replay ms"
    assert config["served_latency_ms"]["label"] == "production ms"
    at = app("queries", query="133")
    replay = next(m for m in at.metric if m.label == "replay ms")
    assert replay.value == "—"


def test_a_run_whose_process_is_gone_shows_interrupted(app, nightly_store, monkeypatch,
                                                       tmp_path):
    """Two runs left 'running': the one whose owner process lives shows running, the one
    whose process is gone shows interrupted with how to resume it; neither is the default."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = {**current_owner(), "pid": gone.pid, "start_ticks": -1}
    path = store_copy(nightly_store, monkeypatch, tmp_path,
                      adhoc_run(nightly_store, "alive-running", status="running"),
                      adhoc_run(nightly_store, "dead-running", status="running"),
                      ("UPDATE runs SET owner = ? WHERE run_id = 'alive-running'",
                       [json.dumps(current_owner())]),
                      ("UPDATE runs SET owner = ? WHERE run_id = 'dead-running'",
                       [json.dumps(dead)]))
    statuses = data.runs(data.source(path)).set_index("run_id")["status"]
    assert statuses["alive-running"] == "running"
    assert statuses["dead-running"] == "interrupted"
    at = app()
    assert at.selectbox(key="run").value == nightly_store.run_id
    labels = at.selectbox(key="run").options
    assert any(label.endswith("· unning · not gated · interrupted") for label in labels)
    assert any(label.endswith("· unning · not gated · running") for label in labels)
    at = app(run="dead-running")
    assert "interrupted" in at.info[0].value and "--resume dead-running" in \
        at.info[0].value.replace("\\", "")


def test_compare_shows_drift_apart_from_causes(app, nightly_store):
    from auditor.compare import compare_runs

    result = compare_runs(Store(nightly_store.path), nightly_store.baseline_run_id,
                          nightly_store.run_id)
    drift = next(c for c in result.cause_counts if c["cause"] == DRIFT)
    at = app("compare")
    assert any(f"for {drift['current']:,} shared queries now, {drift['baseline']:,} in the "
               "baseline" in c.value for c in at.caption)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    causes = next(c for c in charts if "Queries per failure cause" in json.dumps(c))
    assert DRIFT not in json.dumps(causes["data"])
    assert "not_indexed" in json.dumps(causes["data"])


def test_groups_of_runs_without_a_log():
    import pandas as pd

    df = pd.DataFrame({"backend": ["embedded"] * 3, "mode": ["bm25"] * 3,
                       "level": ["doc"] * 3, "log": [None, float("nan"), "/a/log.jsonl"]})
    assert data.groups(df) == ["embedded bm25 · doc level · no log"] * 2 + [
        "embedded bm25 · doc level · log.jsonl"]
