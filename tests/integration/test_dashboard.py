"""Every dashboard page run headless (``AppTest``) against the two-night fixture store: no
exception, the store's own numbers on the page, filters that narrow, links that lead from
the Overview to a failing query's answer trace, and friendly messages for a missing or
busy store. Logged text is checked to reach markdown escaped."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from auditor.cases import DRIFT
from auditor.compare import compare_runs
from auditor.diagnose import RULES
from auditor.store import Store
from dashboards import data
from dashboards.widgets import escape_md, highlight

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
TIMEOUT = 60


def unescape(text: str) -> str:
    """Markdown escapes and the zero-width spaces that stop autolinks, removed."""
    return text.replace("\\", "").replace("\u200b", "")


@pytest.fixture
def app(nightly_store, monkeypatch):
    """A fresh simulated session of the dashboard on the fixture store."""
    monkeypatch.setenv("AUDITOR_STORE", str(nightly_store.path))

    def make(page: str | None = None, **params: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.query_params.update(params)
        at.run()
        if page:
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return make


def markdown(at: AppTest) -> str:
    return "\n".join(unescape(m.value) for m in at.markdown)


def frame(at: AppTest, *columns: str, exact: bool = False):
    """The first dataframe on the page holding ``columns`` (or, ``exact``, those and the
    grade column only): AppTest does not expose the keys of plain dataframes."""
    for d in at.dataframe:
        have = set(d.value.columns)
        if (have == {*columns, "grade"}) if exact else set(columns) <= have:
            return d.value
    raise AssertionError(f"no dataframe with columns {columns}")


def explorer(at: AppTest):
    """The Query explorer's table (keyed by run, filter and page)."""
    return next(d for d in at.dataframe if (d.key or "").startswith("q_table"))


def store_copy(nightly_store, monkeypatch, tmp_path, *sql: tuple[str, list]) -> Path:
    """A copy of the fixture store changed by ``sql`` (statement, parameters), which the
    ``app`` fixture then serves."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(nightly_store.path, copy)
    with duckdb.connect(str(copy)) as con:
        for statement, params in sql:
            con.execute(statement, params)
    monkeypatch.setenv("AUDITOR_STORE", str(copy))
    return copy


def metric_value(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def links(at: AppTest, page: str) -> list[dict[str, str]]:
    """Query parameters of every link to ``page`` (e.g. 'trace')."""
    found = []
    for element in at.get("page_link"):
        if element.proto.page.endswith(f"views/{page}.py") or element.proto.page == page:
            found.append({k: v[0] for k, v in parse_qs(element.proto.query_string).items()})
    return found


def mean(store, run_id: str, metric: str) -> float:
    return next(m["mean"] for m in Store(store.path).metric_means(run_id) if m["metric"] == metric)


# escaping --------------------------------------------------------------------------------
def test_escape_md_escapes_every_punctuation_character():
    hostile = "![x](http://evil/p.png) <script>alert(1)</script> $x$ :red[y] *a* `c`\n# h"
    escaped = escape_md(hostile)
    assert all(f"\\{c}" in escaped for c in set(hostile) & set(string.punctuation))
    assert unescape(escaped) == hostile.replace("\n", " ")
    assert "://\u200b" in escaped.replace("\\", "") and "\\@\u200b" in escape_md("a@b.org")
    assert escape_md("recall@10") == "recall\\@10"


def test_highlight_marks_matching_words_only_and_escapes_the_rest():
    marked = highlight("Tumour cells [grow] fast.", {"cell", "grow"})
    assert ":green-background[**cells**]" in marked
    assert ":green-background[**grow**]" in marked
    assert "\\[" in marked and "\\." in marked and "Tumour" in marked
    assert "**Tumour**" not in marked


# pages -----------------------------------------------------------------------------------
def test_overview_shows_headline_gates_and_regressed_queries(app, nightly_store):
    at = app()
    assert at.title[0].value == "Overview"
    recall = mean(nightly_store, nightly_store.run_id, "recall@10")
    assert metric_value(at, "recall@10") == f"{recall:.3f}"
    assert any("n 50 · 95% CI" in c.value for c in at.caption)
    failed = [g for g in Store(nightly_store.path).gates(nightly_store.run_id) if not g["passed"]]
    assert failed and "Gates failed" in at.error[0].value
    text = markdown(at)
    for gate in failed:
        assert gate["reason"] in text
    regressed = compare_runs(Store(nightly_store.path), nightly_store.baseline_run_id,
                             nightly_store.run_id).regressed
    trace_links = links(at, "trace")
    assert {link["query"] for link in trace_links} >= {regressed[0].query_id}
    assert all(link["run"] == nightly_store.run_id for link in trace_links)


def test_overview_to_failing_trace_is_one_link(app, nightly_store):
    overview = app()
    first = links(overview, "trace")[0]
    at = app("trace", **first)
    assert at.title[0].value == "Answer trace"
    text = markdown(at)
    assert f"Query {first['query']}" in text
    assert "-background[" in text  # the coloured answer
    assert any("causes of failure:" in c.value and "not_indexed" in c.value
               for c in at.caption)


def test_run_picker_lists_runs_and_follows_links(app, nightly_store):
    at = app()
    picker = at.selectbox(key="run")
    assert picker.value == nightly_store.run_id
    assert set(picker.options) and len(picker.options) == 2
    at = app(run=nightly_store.baseline_run_id)
    assert at.selectbox(key="run").value == nightly_store.baseline_run_id
    assert "Gates not evaluated" in at.warning[0].value  # the first night: no baseline


def test_why_counts_causes_with_rules_and_filters_by_segment(app, nightly_store):
    at = app("why")
    counts = {c["cause"]: c["queries"] for c in Store(nightly_store.path).cause_counts(
        nightly_store.run_id)}
    drifted = counts.pop(DRIFT)  # no failure: counted apart
    assert counts["not_indexed"] > 0 and drifted > 0
    table = frame(at, "cause", "queries", "share")
    assert dict(zip(table["cause"], table["queries"], strict=True)) == counts
    text = markdown(at)
    assert RULES["not_indexed"] in text and RULES["ranked_below_k"] in text
    assert any("50 queries in the run" in c.value for c in at.caption)
    assert (f"different results than the index returns today for {drifted} queries"
            in text.replace("**", ""))

    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        acme = con.execute("SELECT count(*) FROM query_results WHERE run_id = ? AND "
                           "metadata ->> 'tenant' = 'acme'", [nightly_store.run_id]).fetchone()[0]
    at.multiselect(key="seg_tenant").set_value(["acme"]).run()
    assert not at.exception
    assert 0 < acme < 50
    assert any(f"{acme} queries in this segment" in c.value for c in at.caption)
    narrowed = frame(at, "cause", "queries", "share")
    assert narrowed["queries"].sum() <= table["queries"].sum()


def test_why_filters_by_logged_time(app, nightly_store):
    at = app("why")
    lo, hi = at.slider(key="seg_time").value
    middle = lo + (hi - lo) / 2
    at.slider(key="seg_time").set_value((lo, middle)).run()
    assert not at.exception
    picked_end = at.slider(key="seg_time").value[1]
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM query_results WHERE run_id = ? AND "
                             "logged_at <= ?", [nightly_store.run_id, picked_end]).fetchone()[0]
    assert 0 < before < 50
    assert any(f"{before} queries in this segment" in c.value for c in at.caption)


def test_query_explorer_searches_filters_and_pages(app, nightly_store):
    at = app("queries")
    assert any("50 queries match" in c.value for c in at.caption)
    assert len(explorer(at).value) == 50
    at.text_input(key="q_search").set_value("thalassemia").run()
    table = explorer(at).value
    assert list(table["query_id"]) == ["42"]
    at.text_input(key="q_search").set_value("").run()
    at.multiselect(key="q_causes").set_value(["not_indexed"]).run()
    table = explorer(at).value
    causes = Store(nightly_store.path).cause_counts(nightly_store.run_id)
    assert len(table) == next(c["queries"] for c in causes if c["cause"] == "not_indexed")
    assert all("not_indexed" in causes for causes in table["causes"])
    at.slider(key="q_recall").set_value(0.0).run()
    assert (explorer(at).value["recall@10"] <= 0.0).all()


def test_query_explorer_sorts_in_sql(app):
    at = app("queries")
    at.selectbox(key="q_sort").set_value("recall@10").run()
    at.radio(key="q_order").set_value("DESC").run()
    values = explorer(at).value["recall@10"].dropna().tolist()
    assert values == sorted(values, reverse=True)


def test_query_explorer_selection_is_by_query_not_row_position(app):
    """A selected row stays the selected query when a search or a new sort moves the rows."""
    at = app("queries")
    table = explorer(at)
    picked = str(table.value.iloc[30]["query_id"])
    at.session_state[table.key] = {"selection": {"rows": [30], "columns": [], "cells": []}}
    at.run()
    assert at.subheader[0].value == f"Query {picked}"
    at.text_input(key="q_search").set_value("thalassemia").run()
    assert not at.exception
    assert list(explorer(at).value["query_id"]) == ["42"]
    assert at.subheader[0].value == f"Query {picked}"

    at = app("queries")
    table = explorer(at)
    picked = str(table.value.iloc[3]["query_id"])
    at.session_state[table.key] = {"selection": {"rows": [3], "columns": [], "cells": []}}
    at.run()
    at.radio(key="q_order").set_value("DESC").run()
    assert not at.exception
    assert str(explorer(at).value.iloc[3]["query_id"]) != picked
    assert at.subheader[0].value == f"Query {picked}"


def test_query_detail_shows_rankings_targets_and_why_missing(app, nightly_store):
    at = app()
    failing = links(at, "queries")[0]["query"]
    at = app("queries", run=nightly_store.run_id, query=failing)
    targets = frame(at, "id", "why_missing")
    missing = targets[targets["why_missing"].str.contains("not_indexed")]
    assert set(missing["id"]) & set(nightly_store.removed_docs)
    assert missing["rank"].isna().all()
    assert len(frame(at, "rank", "chunk_id", "doc_id")) == 20
    assert len(frame(at, "id", "rank", "score", exact=True)) > 0
    assert "Rule:" in markdown(at)
    assert links(at, "trace") == [{"run": nightly_store.run_id, "query": failing}]


def test_query_detail_shows_score_gap_and_term_evidence(app, nightly_store):
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        query_id, evidence = con.execute(
            "SELECT query_id, evidence FROM diagnoses WHERE run_id = ? AND "
            "cause = 'ranked_below_k' ORDER BY query_id LIMIT 1",
            [nightly_store.run_id]).fetchone()
    gap = json.loads(evidence)["score_gap"]
    at = app("queries", query=query_id)
    assert f"Score gap to rank 10:** {gap:.3f}" in markdown(at)


def test_trace_colours_sentences_and_highlights_support(app, nightly_store):
    trace = Store(nightly_store.path).query_trace(nightly_store.run_id, "133")
    statuses = {s["status"] for s in trace["sentences"]}
    at = app("trace", query="133")
    text = markdown(at)
    colours = {"supported": "green", "retrievable_not_retrieved": "orange",
               "contradicted": "violet", "ungrounded": "red"}
    for status in statuses:
        assert f":{colours[status]}-background[" in "\n".join(m.value for m in at.markdown)
    pills = at.button_group(key="sentence_133")
    for sentence in trace["sentences"]:
        pills.set_value(sentence["idx"]).run()
        assert not at.exception
        text = markdown(at)
        assert sentence["status"] in text
        if sentence["status"] == "ungrounded":
            assert "no chunk of the index supports it" in text
        if sentence["best_chunk_id"]:
            assert f"chunk {sentence['best_chunk_id']}" in text
            assert "-background[**" in "\n".join(m.value for m in at.markdown)


def test_trace_links_sources_with_the_url_template(app, monkeypatch):
    monkeypatch.setenv("AUDITOR_DOC_URL", "https://example.org/doc/{doc_id}")
    at = app("trace", query="133")
    urls = [b.proto.url for b in at.get("link_button")]
    assert urls and all(u.startswith("https://example.org/doc/") for u in urls)


def test_trace_without_query_lists_answers_to_open(app):
    at = app("trace")
    assert links(at, "trace")
    assert not at.warning


def test_corpus_page_counts_coverage(app, nightly_store):
    at = app("corpus")
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        documents, never = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE retrieved_at_k = 0) FROM corpus_coverage "
            "WHERE run_id = ?", [nightly_store.run_id]).fetchone()
    counts = Store(nightly_store.path).run(nightly_store.run_id)["counts"]["corpus"]
    assert metric_value(at, "documents") == f"{documents:,}"
    assert metric_value(at, "never retrieved at 10") == f"{never:,}"
    assert metric_value(at, "Gini") == f"{counts['gini']:.3f}"
    assert len(frame(at, "doc_id", "self_rank")) == min(never, 100)
    at.button_group(key="doc_filter").set_value("all").run()
    assert not at.exception
    assert len(frame(at, "doc_id", "self_rank")) == min(documents, 100)


def test_scatter_page_shows_distribution_and_worst(app, nightly_store):
    at = app("scatter")
    scatter = mean(nightly_store, nightly_store.run_id, "scatter_docs")
    assert metric_value(at, "scatter_docs") == f"{scatter:.3f}"
    worst = frame(at, "docs", "doc_sources")
    assert worst["docs"].is_monotonic_decreasing


def test_compare_page_matches_compare_runs(app, nightly_store):
    at = app("compare")
    result = compare_runs(Store(nightly_store.path), nightly_store.baseline_run_id,
                          nightly_store.run_id)
    assert any(f"Regressed** · {result.regressed_total} queries" in m.value
               for m in at.markdown)
    deltas = frame(at, "metric", "delta", "ci_high")
    recall = deltas[deltas["metric"] == "recall@10"].iloc[0]
    assert recall["delta"] == pytest.approx(result.metric("recall@10").delta)
    assert recall["ci_high"] < 0
    # the run and its gated baseline: the stored comparison, the numbers the gates used
    assert any("stored when the run was gated" in c.value for c in at.caption)
    stored = Store(nightly_store.path).comparison_rows(nightly_store.run_id)
    assert list(deltas["metric"]) == [row["metric"] for row in stored]


def test_compare_follows_the_sidebar_run(app, nightly_store):
    at = app("compare")
    at.selectbox(key="run").set_value(nightly_store.baseline_run_id).run()
    assert not at.exception
    current = at.selectbox(key=f"cmp_current_{nightly_store.baseline_run_id}")
    assert current.value == nightly_store.baseline_run_id


def test_overview_counts_causes_over_shared_queries_as_compare_does(nightly_store):
    src = data.source(nightly_store.path)
    counts = data.cause_changes(src, nightly_store.baseline_run_id, nightly_store.run_id)
    result = compare_runs(Store(nightly_store.path), nightly_store.baseline_run_id,
                          nightly_store.run_id)
    assert counts.to_dict("records") == result.cause_counts


def test_query_detail_grade_zero_is_no_target(app, nightly_store, monkeypatch, tmp_path):
    """Judgments of grade 0 are not targets: a query with only those shows its answer's
    silver evidence, as the audit does."""
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("UPDATE judgments SET grade = 0 WHERE query_id = '133'", []))
    at = app("queries", query="133")
    assert "Evidence (silver) documents" in markdown(at)
    assert frame(at, "id", "why_missing")["grade"].isna().all()


def test_query_detail_maps_served_chunks_to_documents(app, nightly_store, monkeypatch,
                                                       tmp_path):
    """In a doc-level run, served chunk ids count as their documents, ranked as documents."""
    run = nightly_store.run_id
    with duckdb.connect(str(nightly_store.path), read_only=True) as con:
        served = json.loads(con.execute("SELECT served FROM query_results WHERE run_id = ? AND "
                                        "query_id = '133'", [run]).fetchone()[0])
    chunks = [{**item, "id": f"{item['id']}#{i % 2}"} for i, item in enumerate(served)]
    store_copy(nightly_store, monkeypatch, tmp_path,
               ("UPDATE hits SET chunk_id = doc_id || '#0' WHERE run_id = ?", [run]),
               ("INSERT INTO passages SELECT ?, unnest(?), unnest(?), NULL, NULL",
                [run, [c["id"] for c in chunks[1::2]], [c["id"] for c in served[1::2]]]),
               ("UPDATE query_results SET served = ? WHERE run_id = ? AND query_id = '133'",
                [json.dumps(chunks), run]))
    at = app("queries", query="133")
    table = frame(at, "id", "rank", "score", "chunk_id", exact=True)
    assert list(table["id"]) == [item["id"] for item in served]
    assert list(table["rank"]) == list(range(1, len(served) + 1))


# the store -------------------------------------------------------------------------------
def test_missing_store_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDITOR_STORE", str(tmp_path / "none.duckdb"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "no results store" in at.error[0].value and "auditor run" in at.error[0].value


def test_busy_store_says_wait(nightly_store, monkeypatch, tmp_path):
    """A writer in another process holds the file: a message, not a traceback."""
    copy = tmp_path / "busy.duckdb"
    shutil.copy(nightly_store.path, copy)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(copy)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("AUDITOR_STORE", str(copy))
        monkeypatch.setenv("AUDITOR_BUSY_TIMEOUT_S", "0.3")  # readers wait 30 s by default
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception
        assert "busy" in at.error[0].value
    finally:
        holder.kill()
        holder.wait()


def test_new_run_shows_up_without_restart(nightly_store, monkeypatch, tmp_path):
    copy = tmp_path / "grow.duckdb"
    shutil.copy(nightly_store.path, copy)
    monkeypatch.setenv("AUDITOR_STORE", str(copy))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert len(at.selectbox(key="run").options) == 2
    time.sleep(0.01)
    with duckdb.connect(str(copy)) as con:
        con.execute("INSERT INTO runs SELECT * REPLACE ('extra-run' AS run_id, "
                    "started_at + INTERVAL 1 DAY AS started_at) FROM runs WHERE run_id = ?",
                    [nightly_store.run_id])
    at.run()
    assert len(at.selectbox(key="run").options) == 3


def test_logged_text_reaches_markdown_escaped(nightly_store, monkeypatch, tmp_path):
    copy = tmp_path / "hostile.duckdb"
    shutil.copy(nightly_store.path, copy)
    hostile = "![x](http://evil.example/p.png) <img src=x onerror=alert(1)> [a](javascript:x)"
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE query_results SET query = ? WHERE query_id = '133'", [hostile])
    monkeypatch.setenv("AUDITOR_STORE", str(copy))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["query"] = "133"
    at.run()
    at.switch_page("views/trace.py").run()
    raw = "\n".join(m.value for m in at.markdown)
    assert escape_md(hostile) in raw
    assert "![x](http" not in raw and "<img" not in raw.replace("\\<img", "")


def old_store_sql() -> list[tuple[str, list]]:
    """What a store written before migration m003 lacks."""
    drop = ["DROP TABLE IF EXISTS verdicts", "DROP TABLE gates", "DROP TABLE comparisons",
            "DROP TABLE judgment_lists", "DROP TABLE judgment_labels", "DROP TABLE rescorings",
            "DROP TABLE rescore_metrics", "DROP TABLE gap_runs", "DROP TABLE gaps",
            "DROP TABLE gap_members", "DROP TABLE pruned_hits", "DROP TABLE ablation_hits",
            "DROP TABLE embeddings", "DROP TABLE passages", "DROP TABLE conflicts",
            "ALTER TABLE runs DROP COLUMN manifest",
            "ALTER TABLE runs DROP COLUMN baseline_run_id",
            "ALTER TABLE runs DROP COLUMN gate_status", "ALTER TABLE runs DROP COLUMN owner",
            "ALTER TABLE query_results RENAME COLUMN replay_latency_ms TO latency_ms",
            "ALTER TABLE judgments RENAME COLUMN grade TO relevance",
            "DELETE FROM schema_migrations WHERE version >= 3"]
    return [(statement, []) for statement in drop]


@pytest.mark.parametrize("page", ["overview", "why", "queries", "trace", "corpus", "scatter",
                                  "gaps", "compare"])
def test_store_older_than_gates_shows_every_page(app, nightly_store, monkeypatch, tmp_path,
                                                 page):
    store_copy(nightly_store, monkeypatch, tmp_path, *old_store_sql())
    at = app(page, query="133")
    assert not at.error
    if page == "overview":
        assert "not gated" in at.info[0].value


def test_empty_run_is_not_the_default_and_shows_every_page(app, nightly_store, monkeypatch,
                                                            tmp_path):
    store_copy(nightly_store, monkeypatch, tmp_path, (
        "INSERT INTO runs (run_id, started_at, status, backend, mode, level, config, "
        "fingerprint, code_version) SELECT 'empty-run', started_at + INTERVAL 1 DAY, "
        "'running', backend, mode, level, config, fingerprint, code_version FROM runs "
        "WHERE run_id = ?", [nightly_store.run_id]))
    assert app().selectbox(key="run").value == nightly_store.run_id  # newest complete
    for page in ("overview", "why", "queries", "trace", "corpus", "scatter", "gaps", "compare"):
        at = app(page, run="empty-run")
        assert not at.error, page
    assert "share no query" in at.info[0].value


def test_run_without_answers_or_judgments(app, nightly_store, monkeypatch, tmp_path):
    """Only label-free metrics: the Overview says so, Compare shows causes and drift."""
    run = nightly_store.run_id
    emptied = [(f"DELETE FROM {table} WHERE run_id = ?", [run]) for table in (
        "judgments", "sentences", "support", "scatter", "diagnoses", "gates", "comparisons",
        "verdicts")]
    store_copy(nightly_store, monkeypatch, tmp_path, *emptied,
               ("DELETE FROM metrics WHERE run_id = ? AND metric NOT IN ('overlap@10', 'rbo')",
                [run]),
               ("UPDATE query_results SET answer = NULL WHERE run_id = ?", [run]),
               ("UPDATE runs SET gate_status = NULL, baseline_run_id = NULL WHERE run_id = ?",
                [run]))
    at = app()
    assert any("(no judgments?)" in c.value for c in at.caption)
    assert not at.success
    at = app("compare")
    assert "share no headline metric" in at.info[0].value
    assert any("Drift of the result lists" in h.value for h in at.subheader)


def test_hostile_answer_sentence_and_metadata_value_stay_text(app, nightly_store, monkeypatch,
                                                              tmp_path):
    hostile = "![x](http://evil.example/p.png) <img src=x onerror=alert(1)> :red[y] $x$"
    run = nightly_store.run_id
    trace = Store(nightly_store.path).query_trace(run, "133")
    first = trace["sentences"][0]
    shift = len(hostile) - first["end_char"]
    answer = hostile + trace["result"]["answer"][first["end_char"]:]
    where = "WHERE run_id = ? AND query_id = '133'"
    store_copy(nightly_store, monkeypatch, tmp_path,
               (f"UPDATE sentences SET start_char = start_char + ?, end_char = end_char + ? "
                f"{where} AND idx > 0", [shift, shift, run]),
               (f"UPDATE sentences SET start_char = 0, end_char = ?, text = ? {where} AND "
                "idx = 0", [len(hostile), hostile, run]),
               (f"UPDATE query_results SET answer = ?, metadata = ? {where}",
                [answer, json.dumps({"tenant": hostile}), run]))
    for page in ("trace", "queries"):
        at = app(page, query="133")
        if page == "trace":
            at.button_group(key="sentence_133").set_value(0).run()
        raw = "\n".join(m.value for m in at.markdown)
        assert "![x](http" not in raw and "<img" not in raw.replace("\\<img", "")
        if page == "trace":
            assert escape_md(hostile) in raw
    at = app("why")
    assert hostile in at.multiselect(key="seg_tenant").options


def test_a_store_that_cannot_be_read_names_auditor_migrate(app, nightly_store, monkeypatch,
                                                          tmp_path):
    """A table the schema promises is missing: the page says how to upgrade the store."""
    copy = store_copy(nightly_store, monkeypatch, tmp_path, ("DROP TABLE verdicts", []))
    at = app()
    (error,) = at.error
    assert f"auditor migrate --store {copy}" in error.value


def test_gaps_page_shows_topics_and_the_worst_topics_queries(app, nightly_store):
    """The Knowledge gaps page: one row per stored topic, the map, and the worst topic's
    queries each linked to its trace."""
    store = Store(nightly_store.path)
    topics = store.gaps(nightly_store.run_id)
    assert topics, "the fixture run has an encoder (ablations): its gaps were looked for"
    at = app("gaps", run=nightly_store.run_id)
    assert not at.error
    assert at.metric[0].value == str(len(topics))
    assert len(at.dataframe[0].value) == len(topics)
    worst = topics[0]
    assert any(f"Topic {worst['cluster']}" in unescape(h.value) for h in at.subheader)
    listed = store.gap_queries(nightly_store.run_id, worst["cluster"])
    assert len(listed) == worst["queries"]
