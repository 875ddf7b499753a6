"""Reports from a real store: a baseline run on the SciFact slice and a regressed run on an
index missing ten judged-relevant documents, gated, with a hostile query text planted in the
regressed run's log. Markdown, JUnit, JSON and HTML are checked, and the HTML is opened in a
real headless chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from auditor.backends.embedded import EmbeddedBackend
from auditor.cases import DRIFT, SENTENCE_CLASSES
from auditor.corpus_reader import read_corpus
from auditor.embed import load_encoder
from auditor.report import (
    Report,
    build_report,
    md_escape,
    render_html,
    render_json,
    render_junit,
    render_markdown,
    write_reports,
)
from auditor.store import Store
from tests.conftest import FIXTURES, ROOT

if TYPE_CHECKING:
    from tests.stores import NightlyStore

SCIFACT = FIXTURES / "scifact"
PLANTED = "<script>alert(1)</script>"
PLANTED_QUERY = "3"  # its only relevant document is among the removed ones
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
FAILING_GATE = "recall@10 >= 0.950"


@dataclass(frozen=True)
class ReportStore:
    path: Path
    baseline_run_id: str
    run_id: str
    removed_docs: list[str]


def _removed_docs(count: int = 10) -> list[str]:
    docs: list[str] = []
    for line in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]:
        doc_id = line.split("\t")[1]
        if doc_id not in docs:
            docs.append(doc_id)
    return docs[:count]


def _planted_log(path: Path) -> Path:
    """The SciFact log with a hostile query text and one record that must be quarantined."""
    lines = []
    for line in (SCIFACT / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["query_id"] == PLANTED_QUERY:
            record["query"] = f"{PLANTED} {record['query']}"
        lines.append(json.dumps(record))
    lines.append(json.dumps({"query": f"{PLANTED} | `tick` *bold*", "answer": "no id"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _audit(tmp: Path, backend: EmbeddedBackend, log: Path) -> str:
    from auditor.audit import run_audit
    from auditor.config import load_settings

    settings = load_settings(None, log=log, qrels=SCIFACT / "qrels.tsv", store=tmp / "a.duckdb",
                             encoder="hash", mode="bm25", index=tmp / "idx",
                             corpus=SCIFACT / "corpus.jsonl")
    run_id, status = run_audit(settings, backend=backend)
    assert status == "complete"
    return run_id


def _gate(store: Store, baseline_id: str, run_id: str) -> None:
    """Gate the run: one floor that fails, one that passes, and the default drop gates."""
    from auditor.compare import compare_runs, comparison_table
    from auditor.config import DEFAULT_GATES, Gate
    from auditor.gates import evaluate, gates_table

    comparison = compare_runs(store, baseline_id, run_id)
    gates = [Gate(metric="recall@10", min=0.95), Gate(metric="hit@100", min=0.5),
             *DEFAULT_GATES]
    means = {row["metric"]: row["mean"] for row in store.metric_means(run_id)}
    results = evaluate(gates, means, comparison)
    store.record_gates(run_id, baseline_id, gates_table(run_id, results),
                       comparison_table(comparison))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, scifact_index: EmbeddedBackend
          ) -> ReportStore:
    tmp = tmp_path_factory.mktemp("report-store")
    baseline_id = _audit(tmp, scifact_index, SCIFACT / "log.jsonl")
    removed = _removed_docs()
    chunks = [c for c in read_corpus(SCIFACT / "corpus.jsonl") if c.doc_id not in removed]
    smaller = EmbeddedBackend.build(chunks, tmp / "idx-removed", load_encoder("hash"))
    run_id = _audit(tmp, smaller, _planted_log(tmp / "log.jsonl"))
    store = Store(tmp / "a.duckdb")
    _gate(store, baseline_id, run_id)
    return ReportStore(store.path, baseline_id, run_id, removed)


@pytest.fixture(scope="module")
def report(built: ReportStore) -> Report:
    return build_report(Store(built.path), built.run_id)


@pytest.fixture(scope="module")
def data(report: Report) -> dict:
    """The report's JSON form (what ``--format json`` prints)."""
    return report.to_json()


def _affected_queries(removed: list[str]) -> set[str]:
    rows = [line.split("\t") for line in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]]
    return {query_id for query_id, doc_id, _ in rows if doc_id in removed}


# building --------------------------------------------------------------------------------
def test_report_data_holds_gates_baseline_and_causes(data: dict, built: ReportStore) -> None:
    assert data["run_id"] == built.run_id
    assert data["baseline_run_id"] == built.baseline_run_id
    assert data["gate_status"] == "failed"
    failed = [g["gate"] for g in data["gates"] if not g["passed"]]
    assert FAILING_GATE in failed and "hit@100 >= 0.500" not in failed
    assert "not_indexed" in {c["cause"] for c in data["causes"]}
    assert data["quarantine"]["count"] == 1
    assert PLANTED in data["quarantine"]["entries"][0]["raw"]
    assert {row["metric"] for row in data["headline"]} >= {"recall@10", "ndcg@10"}
    assert {row["metric"] for row in data["trend"]} >= {"recall@10"}
    assert {row["run_id"] for row in data["trend"]} == {built.baseline_run_id, built.run_id}
    sizes = data["scatter"]["sizes"]
    assert sum(row["queries"] for row in sizes) == 50  # one row per replayed query
    assert [g["k"] for g in data["scatter"]["gatherable"]] == [1, 5, 10, 20, 100]


def test_report_of_an_ungated_run_without_manifest(built: ReportStore) -> None:
    report = build_report(Store(built.path), built.baseline_run_id)
    data = report.to_json()
    assert data["gates"] == [] and data["gate_status"] is None and data["comparison"] is None
    assert "not gated" in render_markdown(report)
    root = ET.fromstring(render_junit(report))
    assert root.find("testsuite").get("tests") == "0"
    assert "Manifest" in render_html(report)
    assert {row["run_id"] for row in data["trend"]} == {built.baseline_run_id}  # not newer runs
    store = Store(built.path)
    assert data["causes"] == [{**c, "baseline": None, "baseline_share": None}
                              for c in store.cause_counts(built.baseline_run_id)
                              if c["cause"] != DRIFT]  # drift is shown apart


def test_trend_keeps_runs_of_the_same_backend_mode_and_level(built: ReportStore,
                                                             tmp_path: Path) -> None:
    shutil.copy(built.path, tmp_path / "copy.duckdb")
    store = Store(tmp_path / "copy.duckdb")
    with store.connect() as con:
        con.execute("UPDATE runs SET mode = 'dense' WHERE run_id = ?", [built.baseline_run_id])
    data = build_report(store, built.run_id).to_json()
    assert {row["run_id"] for row in data["trend"]} == {built.run_id}


def test_headline_shows_the_tested_and_gated_metrics(report: Report, data: dict,
                                                     built: ReportStore) -> None:
    store = Store(built.path)
    tested = {row["metric"] for row in store.comparison_rows(built.run_id)}
    gated = {g["metric"] for g in data["gates"]} & set(data["summary"]["metrics"])
    rows = {row["metric"]: row for row in data["headline"]}
    assert set(rows) == tested | gated and "hit@100" in rows
    assert all(rows[m]["delta"] is not None for m in tested)
    text = render_markdown(report)
    for row in data["headline"]:
        if row["p_holm"] is not None:
            p = row["p_holm"]
            line = next(li for li in text.splitlines() if li.startswith(f"| `{row['metric']}` |"))
            assert line.endswith(f"| {p:.3f} |" if p >= 0.001 else f"| {p:.1e} |")


def test_causes_compare_like_with_like(data: dict) -> None:
    """With a baseline, both runs' cause counts are over the queries both answered."""
    comparison = data["comparison"]
    shared = comparison["shared_queries"]
    failures = [c for c in comparison["cause_counts"] if c["cause"] != DRIFT]
    assert [c["cause"] for c in data["causes"]] == [c["cause"] for c in failures]
    for row, counts in zip(data["causes"], failures, strict=True):
        assert (row["queries"], row["baseline"]) == (counts["current"], counts["baseline"])
        assert row["share"] == pytest.approx(counts["current"] / shared)
        assert row["baseline_share"] == pytest.approx(counts["baseline"] / shared)


def test_report_uses_the_given_comparison_and_full_cause_counts(built: ReportStore) -> None:
    from auditor.compare import compare_runs

    store = Store(built.path)
    comparison = compare_runs(store, built.baseline_run_id, built.run_id, limit=1)
    assert comparison.new_causes_total > 1
    report = build_report(store, built.run_id, comparison=comparison)
    data = report.to_json()
    assert len(data["comparison"]["regressed"]) == 1  # not recomputed with the report's limit
    groups = data["comparison"]["new_causes_by_cause"]
    assert [(g["cause"], g["queries"]) for g in groups] == [
        (c["cause"], c["queries"]) for c in comparison.new_cause_counts if c["cause"] != DRIFT]
    assert sum(len(g["query_ids"]) for g in groups) == 1
    text = render_markdown(report).split("**New causes**")[1]
    for group in groups:
        assert f"- {md_escape(group['cause'])}: {group['queries']} queries" in text
    capped = next(g for g in groups if g["query_ids"])
    assert capped["queries"] > 1 and "first 1 shown" in text
    assert "(first 1 shown)" in render_html(report)


# JSON ------------------------------------------------------------------------------------------
def test_json_round_trips(report: Report, data: dict) -> None:
    assert json.loads(render_json(report)) == data


def test_write_reports_writes_every_format(built: ReportStore, tmp_path: Path) -> None:
    paths = write_reports(Store(built.path), built.run_id, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"report.md", "report.html", "report.json",
                                               "junit.xml"}
    stored = json.loads(paths["json"].read_text())
    assert stored["run_id"] == built.run_id and stored["files"]["html"] == str(paths["html"])
    assert str(paths["html"]) in paths["md"].read_text()
    with pytest.raises(ValueError, match="unknown report format"):
        write_reports(Store(built.path), built.run_id, tmp_path, formats=["pdf"])  # type: ignore[list-item]


# Markdown --------------------------------------------------------------------------------------
def test_md_escape_neutralises_untrusted_text() -> None:
    assert md_escape("a|b`c<d>*e_f[g]\nh\\ &lt;") == r"a\|b\`c\<d>\*e\_f\[g\] h\\ \&lt;"
    assert md_escape("x" * 100, 10) == "x" * 9 + "…"


def test_md_escape_stops_autolinks() -> None:
    text = "@alice see #123 at https://evil.example/x, HTTP://b and www.c.org ~~gone~~"
    escaped = md_escape(text)
    assert "@alice" not in escaped and "#123" not in escaped
    assert "@\u200dalice" in escaped and "#\u200d123" in escaped
    assert "://" not in escaped and "www." not in escaped and "~~" not in escaped
    rendered = _md_to_html(escaped)
    assert "<a" not in rendered and "<del" not in rendered and "<s>" not in rendered
    assert "https[:]//evil.example/x" in rendered and "www[.]c.org" in rendered
    assert "~~gone~~" in rendered


def _md_to_html(text: str) -> str:
    """How GitHub would show it: CommonMark with tables and raw HTML allowed."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def test_markdown_names_failed_gates_reasons_and_causes(report: Report, data: dict,
                                                       built: ReportStore) -> None:
    text = render_markdown(report)
    assert text.startswith(f"### ❌ Retrieval audit `{built.run_id}`: gates failed")
    assert f"baseline `{built.baseline_run_id}`" in text
    gate_rows = [line for line in text.splitlines() if line.startswith(("| ❌ ", "| ✅ ", "| ⏭️ "))]
    assert len(gate_rows) == len(data["gates"])
    failed = [g for g in data["gates"] if not g["passed"]]
    assert [row.startswith("| ❌") for row in gate_rows] == (
        [True] * len(failed) + [False] * (len(gate_rows) - len(failed)))  # failed first
    for gate in failed:
        row = next(r for r in gate_rows if f"`{gate['gate']}`" in r)
        assert row.startswith("| ❌") and md_escape(gate["reason"]) in row
    assert any(FAILING_GATE in row for row in gate_rows[: len(failed)])
    rendered = _md_to_html(text)
    assert "not_indexed" in rendered
    assert "<table>" in rendered and "<script" not in rendered


def test_markdown_lists_regressed_queries(report: Report, built: ReportStore) -> None:
    text = render_markdown(report)
    section = text.split("**Regressed queries**")[1].split("\n\n")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    ids = {line.split(" | ")[0].removeprefix("| ") for line in rows[1:]}
    assert 1 <= len(ids) <= 10
    assert ids <= _affected_queries(built.removed_docs)
    assert PLANTED_QUERY in ids  # recall@10 1 → 0, like every listed one; first in the log
    rendered = _md_to_html(text)
    assert "<script" not in rendered and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "not_indexed" in text.split("**New causes**")[1].replace("\\_", "_")


# JUnit -----------------------------------------------------------------------------------------
def test_junit_has_one_failure_per_failed_gate(report: Report, data: dict,
                                              built: ReportStore) -> None:
    xml = render_junit(report)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None and suite.get("name") == "retrieval-audit"
    cases = suite.findall("testcase")
    assert len(cases) == len(data["gates"]) == int(suite.get("tests"))
    expected = {g["gate"]: g for g in data["gates"]}
    for case in cases:
        assert case.get("classname") == "auditor.gates"
        gate = expected[case.get("name")]
        failures = case.findall("failure")
        if gate["passed"]:
            assert failures == []
        else:
            assert len(failures) == 1 and failures[0].get("message") == gate["reason"]
    assert int(suite.get("failures")) == sum(not g["passed"] for g in data["gates"]) >= 1
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["run_id"] == built.run_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    try:
        import junitparser
    except ImportError:
        return
    parsed = junitparser.JUnitXml.fromstring(xml)
    assert sum(s.failures for s in parsed) == int(suite.get("failures"))


# HTML ------------------------------------------------------------------------------------------
class _Sources(HTMLParser):
    """Every src/href attribute and every element id (script bodies are not parsed)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
            if name == "id" and value:
                self.ids.add(value)


@pytest.fixture(scope="module")
def html(report: Report) -> str:
    return render_html(report)


def test_html_is_self_contained_with_charts(html: str) -> None:
    parsed = _Sources()
    parsed.feed(html)
    assert not [u for u in parsed.urls if re.match(r"\s*(https?:)?//", u)], parsed.urls
    assert {"chart-trend", "chart-causes", "chart-scatter"} <= parsed.ids
    assert html.count("Plotly.newPlot") >= 3
    assert len(html) > 3_000_000  # plotly.js is inlined, once
    assert html.count("* plotly.js v") == 1


def test_html_escapes_logged_text(html: str, data: dict) -> None:
    assert PLANTED not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in html  # the quarantined record's raw text
    assert PLANTED_QUERY in {q["query_id"] for q in data["comparison"]["regressed"]}
    assert html.count(escaped) >= 3  # and the regressed and drifted query's text


def test_reports_count_every_sentence_class(report: Report, data: dict, html: str) -> None:
    counts = data["summary"]["sentences"]
    assert list(counts)[:4] == list(SENTENCE_CLASSES) and sum(counts.values()) > 0
    markdown = render_markdown(report)
    assert "**Answer sentences**: supported " in markdown
    assert f"contradicted {counts['contradicted']}" in markdown
    table = html.split('<table id="sentence-classes">')[1].split("</table>")[0]
    assert re.findall(r'class="cause">(\w+)<', table)[:4] == list(SENTENCE_CLASSES)


def test_html_tables_show_failed_gate_first(html: str) -> None:
    body = html.split('<section id="gates">')[1].split("</section>")[0]
    rows = re.findall(r'<tr class="(pass|fail)">', body)
    assert rows[0] == "fail" and "pass" in rows
    assert FAILING_GATE.replace(">", "&gt;") in body


def test_html_renders_in_chromium(built: ReportStore, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); required when CI is set")
    from playwright.sync_api import sync_playwright

    paths = write_reports(Store(built.path), built.run_id, tmp_path, formats=["html"])
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: errors.append(f"network: {r.url}")
                    if r.url.startswith("http") else None)
            page.goto(paths["html"].as_uri())
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                timeout=20_000)
            assert page.locator(".js-plotly-plot").count() >= 3
            assert page.locator("#chart-causes .bars .point").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []


# the shared nightly store (tests/stores.py) ----------------------------------------------------
def test_reports_from_shared_nightly_store(nightly_store: NightlyStore, tmp_path: Path) -> None:
    paths = write_reports(Store(nightly_store.path), nightly_store.run_id, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["baseline_run_id"] == nightly_store.baseline_run_id
    assert data["gate_status"] == "failed" and data["comparison"]["regressed"]
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert int(suite.get("failures")) == sum(not g["passed"] for g in data["gates"]) >= 1
    text = paths["md"].read_text()
    for gate in data["gates"]:
        assert f"`{gate['gate']}`" in text
    assert r"not\_indexed" in text.split("**New causes**")[1]


def test_report_shows_the_p_values_the_gates_used(built: ReportStore) -> None:
    """The report tests the same metrics as the verdict, so its Holm p-values are the ones
    in the gate reasons (a different family would give different adjusted p-values)."""
    store = Store(built.path)
    stored = {row["metric"]: row for row in store.comparison_rows(built.run_id)}
    data = build_report(store, built.run_id).to_json()
    shown = {m["metric"]: m for m in data["comparison"]["metrics"]}
    assert set(shown) == set(stored)
    for metric, row in stored.items():
        assert shown[metric]["p_holm"] == pytest.approx(row["p_holm"])
        assert shown[metric]["ci_low"] == pytest.approx(row["ci_low"])
