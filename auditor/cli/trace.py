"""`auditor trace`: one query told to a person. Numbers have three significant digits, terms
are the words of the query (not their stems), and each cause's evidence is a short sentence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from auditor.cli.options import ConfigOpt, JsonOpt, StoreOpt
from auditor.cli.render import out
from auditor.config import load_settings
from auditor.sentences import TOKEN, content_words
from auditor.store import Store

STATUS_STYLE = {"supported": "green", "retrievable_not_retrieved": "yellow",
                "contradicted": "magenta", "ungrounded": "red"}
JSON_COLUMNS = ("served", "cited", "metadata")  # stored as JSON text: decoded once for --json


def trace(
    query_id: Annotated[str, typer.Argument(help="the logged query id")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: latest)")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one answer sentence by sentence with its sources, and why retrieval failed."""
    settings = load_settings(config, store=store)
    results = Store(settings.store)
    run_id = run_id or results.latest_run_with(query_id)
    data = results.query_trace(run_id, query_id)
    data["hits_pruned"] = results.hits_pruned(run_id)
    if as_json:
        typer.echo(json.dumps(trace_json(run_id, data), indent=2, default=str))
    else:
        print_trace(out, run_id, data)


def num(value: Any) -> str:
    """A number as people read it: integers whole, others to 3 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def rank(value: int | None) -> str:
    return "absent" if value is None else f"#{value}"


def words_of(stems: Iterable[str], text: str) -> list[str]:
    """The query's own words for analyzed terms (``assembl`` → ``Assembly``); a term the
    query does not spell (another analyzer) stays as it is."""
    spelled: dict[str, str] = {}
    for token in TOKEN.findall(text):
        for stem in content_words(token):
            spelled.setdefault(stem, token)
    return [spelled.get(stem, stem) for stem in stems]


def trace_json(run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The stored trace with JSON columns decoded once (never a string holding JSON)."""
    result = {key: _decoded(value) if key in JSON_COLUMNS else value
              for key, value in data["result"].items()}
    diagnoses = [{**row, "evidence": _decoded(row["evidence"])} for row in data["diagnoses"]]
    return {"run_id": run_id, **data, "result": result, "diagnoses": diagnoses}


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def print_trace(out: Console, run_id: str, data: dict[str, Any]) -> None:
    """The answer sentence by sentence with its sources, then each cause in a sentence."""
    result = data["result"]
    say = out.print
    say(Text.assemble((result["query_id"], "bold"), f" · run {run_id} · replay "
                      f"{result['status']} · {result['n_hits']} hits"
                      + (" (hits pruned)" if data.get("hits_pruned") else "")), highlight=False)
    say(Text(f"query: {result['query']}"), highlight=False)
    support: dict[int, list[dict[str, Any]]] = {}
    for row in data["support"]:
        support.setdefault(row["idx"], []).append(row)
    conflicts: dict[int, list[dict[str, Any]]] = {}
    for row in data.get("conflicts") or []:  # a trace read from an older store has none
        conflicts.setdefault(row["idx"], []).append(row)
    if not data["sentences"]:
        say(Text("no answer logged (or no factual sentence in it)", style="dim"))
    for sentence in data["sentences"]:
        colour = STATUS_STYLE.get(sentence["status"], "white")
        say(Text.assemble("\n", (f"■ {sentence['status']} ", colour), sentence["text"]),
            highlight=False)
        for line in _support_lines(sentence, support.get(sentence["idx"], [])):
            say(Text("    " + line), highlight=False)
        for row in conflicts.get(sentence["idx"], [])[:3]:
            say(Text.assemble("    ", ("conflict", "magenta"), f" {conflict_line(row)}"),
                highlight=False)
    causes = data["diagnoses"]
    say(Text("\ncauses", style="bold") if causes else Text("\nno failure cause", style="green"))
    for row in causes:
        evidence = _decoded(row["evidence"]) or {}
        say(Text.assemble("  ", (row["cause"], "yellow"), ": ",
                          explain(row["cause"], row["target_id"], evidence, result["query"])),
            highlight=False)


def _support_lines(sentence: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{row['origin']} {rank(row['rank'])}: {_unit(row['chunk_id'], row['doc_id'])}, "
             f"support {num(row['score'])}" for row in rows if row["origin"] != "index"][:6]
    if sentence["status"] != "supported":
        where = (f"replayed at {rank(sentence['replayed_rank'])}" if sentence["replayed_rank"]
                 else "not in the replayed top-k")
        best = sentence["best_chunk_id"]
        lines.append("best support anywhere: " + (
            f"{_unit(best, sentence['best_doc_id'])}, support {num(sentence['best_score'])}, "
            f"{where}" if best else "none")
            + (" (adjacent chunks joined)" if sentence["composite"] else ""))
    return lines


def conflict_line(row: dict[str, Any]) -> str:
    """Both values side by side, where the passage is: plain text (callers wrap it in
    ``Text``, so a value such as "[bold]" is printed as written, never read as markup)."""
    return (f"{row['origin']} {rank(row['rank'])}: {_unit(row['chunk_id'], row['doc_id'])}: "
            f"the passage says {row['passage_value']}, the answer says {row['answer_value']}")


def _conflicts(e: dict[str, Any]) -> str:
    rows = [(s, c) for s in e.get("sentences") or [] for c in s["conflicts"]]
    shown = [f"{c['origin']} {rank(c['rank'])} ({_unit(c['chunk_id'], c['doc_id'])}) says "
             f"{c['passage']} where the answer says {c['answer']}" for _, c in rows[:2]]
    more = f" and {len(rows) - 2} more" if len(rows) > 2 else ""
    return "; ".join(shown) + more


def _unit(chunk_id: str, doc_id: str | None) -> str:
    return f"chunk {chunk_id}" + (f" of doc {doc_id}" if doc_id and doc_id != chunk_id else "")


def explain(cause: str, target: str | None, e: dict[str, Any], query: str) -> str:
    """One cause's evidence as a sentence; an unknown cause lists its values readably."""
    sentence = EXPLAIN.get(cause)
    if sentence is not None:
        try:
            return sentence(target or "the answer", e, query)
        except (KeyError, TypeError, ValueError):
            pass  # evidence of an older shape: fall back to its values
    return ", ".join(f"{key.replace('_', ' ')} {_value(value)}" for key, value in e.items())


def _value(value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(_value(v) for v in value[:5])
        return shown + (f" and {len(value) - 5} more" if len(value) > 5 else "")
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_value(v)}" for k, v in value.items()) + ")"
    return num(value)


def _ranks(e: dict[str, Any], *modes: str) -> str:
    names = {"bm25": "BM25", "dense": "dense", "exact": "exact kNN", "replayed": "replayed",
             "unfiltered": "unfiltered"}
    shown = [f"{names[m]} {rank(e.get(f'{m}_rank'))}" for m in modes if f"{m}_rank" in e]
    return ", ".join(shown)


def _sentences(e: dict[str, Any]) -> str:
    rows = e.get("sentences") or []
    texts = [f"“{_clip(row['text'])}”" for row in rows[:2]]
    more = f" and {len(rows) - 2} more" if len(rows) > 2 else ""
    return "; ".join(texts) + more


def _clip(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _missing_words(e: dict[str, Any], query: str) -> str:
    missing = words_of(e.get("missing_terms") or [], query)
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8
                                      else "")
    return f"; it lacks {shown}" if missing else ""


Explain = Callable[[str, dict[str, Any], str], str]
EXPLAIN: dict[str, Explain] = {
    "not_indexed": lambda t, e, q: f"{t} is not in the index"
    + (" (an answer's evidence, not a judgment)" if e.get("silver") else ""),
    "ranked_below_k": lambda t, e, q: (
        f"{t} is at rank {e['rank']}, below the cut-off {e['k']}: its score {num(e['score'])} "
        f"is {num(e['score_gap'])} under rank {e['k']}'s {num(e['score_at_k'])}"),
    "not_retrieved": lambda t, e, q: (
        f"{t} is not in the top {e['depth']} at all; it holds "
        f"{num(100 * e['term_overlap'])}% of the query's words"
        + (f", dense similarity {num(e['dense_similarity'])}"
           if e.get("dense_similarity") is not None else "")),
    "vocabulary_mismatch": lambda t, e, q: (
        f"{t} holds only {num(100 * e['term_overlap'])}% of the query's words"
        f"{_missing_words(e, q)} ({_ranks(e, 'bm25', 'dense')})"),
    "semantic_miss": lambda t, e, q: (
        f"BM25 finds {t} in the top k but dense retrieval does not "
        f"({_ranks(e, 'bm25', 'dense')}; similarity {num(e.get('dense_similarity'))} vs "
        f"{num(e.get('dense_similarity_at_k'))} at k)"),
    "ann_loss": lambda t, e, q: (
        f"exact kNN finds {t} in the top k, approximate kNN does not "
        f"({_ranks(e, 'exact', 'dense')})"),
    "fusion_loss": lambda t, e, q: (
        f"a single retriever ranks {t} in the top k, the fused list does not "
        f"({_ranks(e, 'bm25', 'dense', 'replayed')})"),
    "filtered_out": lambda t, e, q: (
        f"without the filter {t} is in the top k ({_ranks(e, 'unfiltered', 'replayed')})"),
    "scattered": lambda t, e, q: (
        f"the answer draws on {e['scatter_docs']} documents ({num(e['scatter_chunks'])} "
        f"chunks), more than the limit of {e['scatter_limit']}"
        + ("" if e.get("gatherable") else f"; no top {e['k']} can hold them all")),
    "chunk_split": lambda t, e, q: (
        f"only adjacent chunks joined support {_sentences(e)}"),
    "crowded_out": lambda t, e, q: (
        f"near-duplicates or one document fill {num(100 * e['share'])}% of the top {e['k']}, "
        f"pushing out {', '.join(e.get('missed') or []) or 'answer evidence'}"),
    "unsupported_answer": lambda t, e, q: (
        f"no chunk of the index supports {_sentences(e)}"),
    "conflicting_evidence": lambda t, e, q: (
        f"in the top {e['k']}, {_conflicts(e)}"),
    "drifted": lambda t, e, q: (
        f"production served different results than the index returns today: "
        f"{num(100 * e['overlap'])}% of the top {e['k']} in common, RBO {num(e['rbo'])} "
        "(drift, not a failure)"),
    "empty_result": lambda t, e, q: (
        f"the {e.get('mode') or ''} search returned nothing".replace("the  ", "the ")
        + (f" (production served {e['served']})" if e.get("served") else "")),
    "slow": lambda t, e, q: (
        f"the search took {num(e['replay_latency_ms'])} ms, over the {num(e['slow_ms'])} ms limit"),
}
