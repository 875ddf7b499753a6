"""A conflict read back from the store and shown with both values side by side: in the
CLI (``auditor trace``) as plain text, never Rich markup, and in the dashboard as escaped
markdown, never HTML. The values planted hold "[bold]" and "<b>"."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from markdown_it import MarkdownIt
from rich.console import Console

from auditor.cli.trace import explain, print_trace
from auditor.store import Store
from dashboards.widgets import conflict_md

PASSAGE, ANSWER = "[bold]9,312[/bold]", "<b>9,984</b>"


def _stored(tmp_path: Path) -> dict:
    store = Store(tmp_path / "audit.duckdb")
    store.create_run("r", backend="embedded", mode="bm25", level="doc", config={},
                     fingerprint={}, code_version="test")
    sentence = {"run_id": "r", "query_id": "q", "idx": 0, "start_char": 0, "end_char": 40,
                "text": "As of 2010 the county population was 9,984.", "status": "contradicted",
                "served_score": 0.4, "replayed_rank": None, "best_chunk_id": "town#0",
                "best_doc_id": "town", "best_score": 0.4, "composite": False}
    conflict = {"run_id": "r", "query_id": "q", "idx": 0, "origin": "served", "rank": 1,
                "chunk_id": "town#0", "doc_id": "town", "kind": "number",
                "answer_value": ANSWER, "passage_value": PASSAGE}
    store.append({
        "query_results": pa.Table.from_pylist([{"run_id": "r", "seq": 0, "query_id": "q",
                                                "query": "county population", "status": "ok",
                                                "n_hits": 0}]),
        "sentences": pa.Table.from_pylist([sentence]),
        "conflicts": pa.Table.from_pylist([conflict]),
    })
    return store.query_trace("r", "q")


def test_cli_trace_prints_both_values_as_written(tmp_path: Path) -> None:
    data = _stored(tmp_path)
    console = Console(record=True, width=300, color_system=None)
    print_trace(console, "r", data)
    text = console.export_text()
    assert "■ contradicted As of 2010" in text
    assert (f"conflict served #1: chunk town#0 of doc town: the passage says {PASSAGE}, "
            f"the answer says {ANSWER}") in text


def test_cli_explains_conflicting_evidence_with_both_values() -> None:
    evidence = {"k": 10, "sentences": [{"index": 0, "text": "…", "contradicted": True,
                                        "conflicts": [{"chunk_id": "town#0", "doc_id": "town",
                                                       "origin": "replayed", "rank": 3,
                                                       "kind": "number", "answer": "9,984",
                                                       "passage": "9,312"}]}]}
    assert explain("conflicting_evidence", None, evidence, "q") == (
        "in the top 10, replayed #3 (chunk town#0 of doc town) says 9,312 where the answer "
        "says 9,984")


def test_dashboard_conflict_is_escaped_markdown(tmp_path: Path) -> None:
    (row,) = _stored(tmp_path)["conflicts"]
    html = MarkdownIt("commonmark", {"html": True}).render(conflict_md(row))
    assert "<b>" not in html and "&lt;b&gt;9,984&lt;/b&gt;" in html
    assert "the passage says <strong>[bold]9,312[/bold]</strong>, the answer says " \
           "<strong>&lt;b&gt;9,984&lt;/b&gt;</strong>" in html


def test_dashboard_trace_page_shows_the_conflict(tmp_path: Path, monkeypatch) -> None:
    import duckdb
    from streamlit.testing.v1 import AppTest

    _stored(tmp_path)
    with duckdb.connect(str(tmp_path / "audit.duckdb")) as con:
        con.execute("UPDATE query_results SET answer = 'As of 2010 the county population "
                    "was 9,984.'")
        con.execute("UPDATE runs SET status = 'complete'")
    monkeypatch.setenv("AUDITOR_STORE", str(tmp_path / "audit.duckdb"))
    app = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.query_params.update({"run": "r", "query": "q"})
    at.run()
    at.switch_page("views/trace.py").run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [m.value for m in at.markdown if "the passage says" in m.value]
    assert shown == [conflict_md({"origin": "served", "rank": 1, "chunk_id": "town#0",
                                  "doc_id": "town", "passage_value": PASSAGE,
                                  "answer_value": ANSWER})]
    assert "<b>" not in shown[0]
