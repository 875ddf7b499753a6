"""Gates that cannot pass on nothing: comparable baselines, `not evaluated` as its own status
(JSON, JUnit, Markdown, HTML, the store), failed runs of 0 queries, warnings about weak
judgments, the verdict history, drift apart from failure causes, and small HTML reports.

The CLI runs as a team's nightly job would (subprocess, hash encoder, bm25).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from auditor.compare import Comparison, MetricDelta
from auditor.config import Gate
from auditor.gates import evaluate, smallest_p
from auditor.records import overall
from auditor.store import MIGRATIONS, Store
from auditor.verdict import Verdict
from tests.conftest import FIXTURES

from .test_audit import auditor, write_config
from .test_nightly import run_json

SCIFACT = FIXTURES / "scifact"
LINES = (SCIFACT / "log.jsonl").read_text().splitlines()
HTML_LIMIT = 500_000  # bytes per run


# the gate model ---------------------------------------------------------------------------
def comparison(n: int, baseline: float, current: float, p: float) -> Comparison:
    delta = MetricDelta("recall@10", n, baseline, current, current - baseline, None, None, p, p)
    return Comparison("base", "cur", n, 0, 0, 0.05, [delta], [], [], 0, 0, [], [], [], {})


def test_a_gate_that_could_not_be_checked_is_not_evaluated() -> None:
    relative, floor = Gate(metric="recall@10", max_drop=0.02), Gate(metric="ndcg@10", min=0.5)
    results = evaluate([relative, floor], {"ndcg@10": None}, None,
                       no_baseline="first run: nothing to compare with")
    assert [r.status for r in results] == ["not_evaluated", "not_evaluated"]
    assert not any(r.passed for r in results)
    assert "first run: nothing to compare with" in results[0].reason
    assert "not measured" in results[1].reason
    assert results[0].as_dict()["status"] == "not_evaluated"


def test_too_few_paired_queries_cannot_pass_a_relative_gate() -> None:
    gate = Gate(metric="recall@10", max_drop=0.02)
    assert smallest_p(5) >= 0.05 > smallest_p(6)
    few = evaluate([gate], {}, comparison(5, 0.9, 0.9, 1.0))[0]
    enough = evaluate([gate], {}, comparison(40, 0.9, 0.9, 1.0))[0]
    dropped = evaluate([gate], {}, comparison(40, 0.9, 0.5, 0.001))[0]
    assert (few.status, enough.status, dropped.status) == ("not_evaluated", "passed", "failed")
    assert "too few" in few.reason


def test_verdict_status_and_require_baseline() -> None:
    assert overall(["passed", "not_evaluated"]) == "not_evaluated"
    assert overall(["failed", "not_evaluated"]) == "failed"
    assert overall(["passed"]) == overall([]) == "passed"
    results = evaluate([Gate(metric="recall@10", max_drop=0.02)], {}, None)
    lenient = Verdict("r", "complete", None, None, results)
    strict = Verdict("r", "complete", None, None, results, require_baseline=True)
    assert lenient.gate_status == strict.gate_status == "not_evaluated"
    assert (lenient.exit_code, strict.exit_code) == (0, 1)
    assert strict.failed == strict.not_evaluated == results


def test_a_run_that_is_not_complete_fails_with_its_reason() -> None:
    results = evaluate([], {}, None, status="failed", status_reason="the log holds no record")
    assert results[0].status == "failed" and "the log holds no record" in results[0].reason


# the store --------------------------------------------------------------------------------
def test_migration_backfills_gate_status(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "applied_at TIMESTAMPTZ)")
        for version, func in enumerate(list(MIGRATIONS.values())[:4], start=1):
            func(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())",
                        [version, func.__name__])
        for run_id, gate_status in (("first", "passed"), ("bad", "failed"), ("good", "passed")):
            con.execute("INSERT INTO runs (run_id, started_at, status, backend, mode, level, "
                        "config, fingerprint, code_version, gate_status) VALUES "
                        "(?, now(), 'complete', 'embedded', 'bm25', 'doc', '{}', '{}', '0', ?)",
                        [run_id, gate_status])
        con.execute("INSERT INTO gates VALUES "
                    "('first', 'g', 'recall@10', 'max_drop', true, NULL, 0.02, NULL, 'no base'),"
                    "('bad', 'g', 'recall@10', 'max_drop', false, 0.3, 0.02, 'first', 'drop'),"
                    "('good', 'g', 'recall@10', 'max_drop', true, 0.0, 0.02, 'first', 'ok')")
    store = Store(path)
    assert [g["status"] for g in store.gates("first")] == ["not_evaluated"]  # read-only, old
    with store.connect():
        pass  # a writer migrates
    assert [store.gates(r)[0]["status"] for r in ("first", "bad", "good")] == [
        "not_evaluated", "failed", "passed"]
    assert store.run("first")["gate_status"] == "not_evaluated"
    assert store.verdicts("first") == [] and store.latest_verdict("first") is None


# the nightly sequence ---------------------------------------------------------------------
def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run on log A, then on log B (a third of A's queries), then on A again."""
    directory = tmp_path_factory.mktemp("gates")
    log_a = write_log(directory / "a.jsonl", LINES[:30])
    log_b = write_log(directory / "b.jsonl", LINES[20:50])  # 10 of 30 queries shared
    write_config(directory, log=str(log_a), reports=str(directory / "reports"))
    built = auditor("index", "build", cwd=directory)
    assert built.returncode == 0, built.stderr
    runs = {}
    for name, log in (("a1", log_a), ("b", log_b), ("a2", log_a)):
        code, data, stderr = run_json("run", "--log", str(log), cwd=directory)
        assert code == 0, stderr
        runs[name] = data
    return {"dir": directory, "store": Store(directory / "audit.duckdb"), **runs}


def relative_gates(verdict: dict) -> list[dict]:
    return [g for g in verdict["gates"] if g["kind"] == "max_drop"]


def test_first_night_has_nothing_to_compare_with(night: dict) -> None:
    verdict = night["a1"]["verdict"]
    assert verdict["passed"] and verdict["gate_status"] == "not_evaluated"
    assert verdict["baseline_run_id"] is None
    assert verdict["baseline_reason"] == "first run: nothing to compare with"
    assert {g["status"] for g in relative_gates(verdict)} == {"not_evaluated"}


def test_a_run_on_another_log_is_not_compared(night: dict) -> None:
    verdict = night["b"]["verdict"]
    assert verdict["baseline_run_id"] is None
    assert "shares 33% of this run's queries (needs 50%)" in verdict["baseline_reason"]
    gates = relative_gates(verdict)
    assert gates and {g["status"] for g in gates} == {"not_evaluated"}
    assert not any(g["passed"] for g in gates)
    stored = night["store"].gates(night["b"]["run_id"])
    assert {g["status"] for g in stored} == {"not_evaluated"}
    assert night["store"].run(night["b"]["run_id"])["gate_status"] == "not_evaluated"


def test_the_next_night_on_log_a_is_compared_with_the_first(night: dict) -> None:
    verdict = night["a2"]["verdict"]
    assert verdict["baseline_run_id"] == night["a1"]["run_id"]
    assert verdict["baseline_reason"] is None and verdict["gate_status"] == "passed"
    assert {g["status"] for g in relative_gates(verdict)} == {"passed"}
    store = night["store"]
    assert store.resolve_baseline("last-passing", night["a2"]["run_id"]) == night["a1"]["run_id"]
    # B shares 10 of A's 30 queries: with a lower bar it becomes comparable
    assert store.comparable_baseline("last", night["a2"]["run_id"], min_shared=0.3) == (
        night["b"]["run_id"], None)


def test_not_evaluated_in_every_report(night: dict) -> None:
    reports = night["b"]["verdict"]["reports"]
    suite = ET.parse(reports["junit"]).getroot()
    skipped = suite.findall(".//testcase/skipped")
    assert len(skipped) == 2 and suite.get("skipped") == "2" and suite.get("failures") == "0"
    assert "shares 33%" in skipped[0].get("message")
    data = json.loads(Path(reports["json"]).read_text())
    assert data["gate_status"] == "not_evaluated"
    assert {g["status"] for g in data["gates"]} == {"not_evaluated"}
    assert "needs 50%" in data["verdict"]["baseline_reason"]
    markdown = Path(reports["md"]).read_text()
    assert "gates not evaluated" in markdown and "⏭️ not evaluated" in markdown
    assert "2 not evaluated" in markdown and "✅" not in markdown
    html = Path(reports["html"]).read_text()
    assert "GATES NOT EVALUATED" in html and 'class="badge skip">not evaluated' in html


def test_baseline_none_means_none(night: dict) -> None:
    code, data, stderr = run_json("gate", night["a2"]["run_id"], "--baseline", "none",
                                  cwd=night["dir"])
    assert code == 0, stderr
    assert data["baseline_run_id"] is None and "baseline = none" in data["baseline_reason"]
    assert night["store"].run(night["a2"]["run_id"])["baseline_run_id"] is None
    # and the run is judged against its baseline again
    code, data, stderr = run_json("gate", night["a2"]["run_id"], cwd=night["dir"])
    assert code == 0 and data["baseline_run_id"] == night["a1"]["run_id"], stderr


def test_a_named_baseline_must_be_comparable_too(night: dict) -> None:
    code, data, stderr = run_json("gate", night["b"]["run_id"], "--baseline",
                                  night["a1"]["run_id"], cwd=night["dir"])
    assert code == 0, stderr
    assert data["baseline_run_id"] is None and data["gate_status"] == "not_evaluated"
    assert data["baseline_reason"] == (f"no comparable baseline: run {night['a1']['run_id']} "
                                       "shares 33% of this run's queries (needs 50%)")
    code, data, stderr = run_json("gate", night["b"]["run_id"], "--baseline",
                                  night["a1"]["run_id"], cwd=night["dir"],
                                  env={"AUDITOR_BASELINE_MIN_SHARED": "0.3"})
    assert code == 0 and data["baseline_run_id"] == night["a1"]["run_id"], stderr


def test_require_baseline_fails_what_was_not_evaluated(night: dict) -> None:
    done = auditor("gate", night["b"]["run_id"], cwd=night["dir"])
    assert done.returncode == 0, done.stderr
    code, data, _ = run_json("gate", night["b"]["run_id"], cwd=night["dir"],
                             env={"AUDITOR_REQUIRE_BASELINE": "true"})
    assert code == 1 and not data["passed"] and data["gate_status"] == "not_evaluated"


def test_regating_keeps_every_verdict_and_report(night: dict) -> None:
    run_id = night["a1"]["run_id"]
    directory = Path(night["a1"]["verdict"]["reports"]["md"]).parent
    first_md = (directory / "report.md").read_text()
    done = auditor("gate", run_id, "--baseline", "none", cwd=night["dir"])
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert f"verdict 2 on run {run_id}: it was judged before (verdict 1: not_evaluated" in said
    verdicts = night["store"].verdicts(run_id)
    assert [v["verdict_id"] for v in verdicts] == [2, 1]
    assert night["store"].latest_verdict(run_id)["verdict_id"] == 2
    assert (directory / "verdict-1" / "report.md").read_text() == first_md
    latest = (directory / "report.md").read_text()
    assert "This is verdict 2 on this run" in latest
    for page in (directory / "report.html", directory / "verdict-1" / "report.html"):
        src = re.search(r'<script src="([^"]+)"', page.read_text()).group(1)
        assert (page.parent / src).resolve().is_file(), src


# HTML size --------------------------------------------------------------------------------
def test_html_report_is_small_and_shares_one_plotly(night: dict) -> None:
    reports = night["dir"] / "reports"
    pages = sorted(reports.glob("*/report.html"))
    assert len(pages) >= 3
    for page in pages:
        assert page.stat().st_size <= HTML_LIMIT, (page, page.stat().st_size)
        assert '<script src="../assets/plotly-' in page.read_text()
    assets = list((reports / "assets").iterdir())
    assert len(assets) == 1 and assets[0].name.endswith(".min.js")
    assert assets[0].stat().st_size > 1_000_000  # plotly.js itself, once


def test_report_command_writes_a_small_page_or_a_standalone_one(night: dict,
                                                               tmp_path: Path) -> None:
    run_id = night["a2"]["run_id"]
    page = tmp_path / "out" / "page.html"
    done = auditor("report", run_id, "--format", "html", "-o", str(page), cwd=night["dir"])
    assert done.returncode == 0, done.stderr
    src = re.search(r'<script src="([^"]+)"', page.read_text()).group(1)
    assert src.startswith("assets/plotly-") and (page.parent / src).is_file()
    assert page.stat().st_size <= HTML_LIMIT
    alone = tmp_path / "alone.html"
    done = auditor("report", run_id, "--format", "html", "-o", str(alone), "--standalone",
                   cwd=night["dir"])
    assert done.returncode == 0, done.stderr
    assert alone.stat().st_size > 1_000_000 and "<script src=" not in alone.read_text()


# drift apart from failure causes ------------------------------------------------------------
def test_drift_is_shown_apart_from_failure_causes(night: dict) -> None:
    run_id = night["a1"]["run_id"]
    with duckdb.connect(str(night["store"].path), read_only=True) as con:
        drifted = con.execute("SELECT count(DISTINCT query_id) FROM diagnoses WHERE "
                              "run_id = ? AND cause = 'drifted'", [run_id]).fetchone()[0]
    assert drifted > 0
    sentence = (f"production served different results than the index returns today for "
                f"{drifted} queries (drift)")
    summary = night["a1"]
    assert summary["drift"]["queries"] == drifted and summary["drift"]["sentence"] == sentence
    directory = Path(summary["verdict"]["reports"]["md"]).parent
    data = json.loads((directory / "report.json").read_text())
    assert data["causes"] and all(c["cause"] != "drifted" for c in data["causes"])
    replayed = summary["counts"]["replayed"]
    for cause in data["causes"]:  # shares of the replayed queries, drift left out
        assert cause["share"] == pytest.approx(cause["queries"] / replayed)
    for name in ("report.md", "report.html"):
        text = " ".join((directory / name).read_text().replace("\\", "").split()).lower()
        assert sentence in text, name
    html = (directory / "report.html").read_text()
    assert '"drifted"' not in html.split('id="chart-causes"')[-1].split("</section>")[0]


# runs of nothing ----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "reason"), [
    ("empty", "", "the log holds no record"),
    ("blank", "\n  \n\n", "no query accepted from the log"),
    ("quarantined", '{"query_id": "x"}\n{not json\n', "2 quarantined"),
])
def test_a_log_without_queries_fails_the_run(night: dict, tmp_path: Path, name: str,
                                             text: str, reason: str) -> None:
    log = tmp_path / f"{name}.jsonl"
    log.write_text(text)
    store = tmp_path / "audit.duckdb"
    code, data, stderr = run_json("run", "--log", str(log), "--store", str(store),
                                  cwd=night["dir"])
    assert code == 1, stderr
    assert data["status"] == "failed" and reason in data["status_reason"]
    assert not data["verdict"]["passed"] and data["verdict"]["gate_status"] == "failed"
    failed = [g for g in data["verdict"]["gates"] if g["status"] == "failed"]
    assert failed and reason in failed[0]["reason"]


# weak judgments -----------------------------------------------------------------------------
def test_qrels_that_match_no_query_warn_and_leave_gates_unevaluated(night: dict,
                                                                    tmp_path: Path) -> None:
    rows = (SCIFACT / "qrels.tsv").read_text().splitlines()
    qrels = tmp_path / "other.tsv"
    qrels.write_text("\n".join([rows[0]] + [f"other-{r}" for r in rows[1:]]) + "\n")
    config = write_config(tmp_path, index=str(night["dir"] / "index"), qrels=str(qrels),
                          baseline="none")
    config.write_text(config.read_text() + '\n[[gates]]\nmetric = "ndcg@10"\nmin = 0.3\n')
    code, data, stderr = run_json("run", cwd=tmp_path)
    assert code == 0, stderr
    verdict = data["verdict"]
    assert verdict["gate_status"] == "not_evaluated"
    assert [g["status"] for g in verdict["gates"]] == ["not_evaluated"]
    named = len({r.split("\t")[0] for r in rows[1:]})
    assert verdict["warnings"] == [
        f"qrels name {named} queries none of which is in the log: check that the qrels and "
        "the log use the same query ids"]


def test_under_half_judged_is_a_warning(night: dict, tmp_path: Path) -> None:
    rows = (SCIFACT / "qrels.tsv").read_text().splitlines()
    judged = sorted({r.split("\t")[0] for r in rows[1:]})[:10]
    qrels = tmp_path / "few.tsv"
    qrels.write_text("\n".join([rows[0]] + [r for r in rows[1:]
                                            if r.split("\t")[0] in judged]) + "\n")
    write_config(tmp_path, index=str(night["dir"] / "index"), qrels=str(qrels),
                 baseline="none")
    code, data, stderr = run_json("run", cwd=tmp_path)
    assert code == 0, stderr
    assert data["verdict"]["warnings"][0].startswith("only 10 of 50 queries are judged")
    markdown = Path(data["verdict"]["reports"]["md"]).read_text().replace("\\", "")
    assert "only 10 of 50 queries are judged" in markdown
