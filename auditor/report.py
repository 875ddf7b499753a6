"""Reports of one run: Markdown for a pull request or chat, an HTML page with charts, JSON,
and JUnit XML with one test case per gate (a gate that was not evaluated is ``skipped``).

The HTML page reads offline: plotly.js is one shared file beside the reports
(``assets/plotly-<version>.min.js``, written once) so a nightly page stays small; a
standalone page (``auditor report --format html --standalone``) inlines it instead.
Drift (production served other results than the index returns today) is shown apart from
the causes of failed retrieval, and the causes' shares leave it out.

``build_report`` gathers everything once into JSON-safe data; each ``render_*`` only formats
it, so the four formats never disagree. Logged query text is untrusted: Markdown escapes it,
the HTML template autoescapes it, and no chart carries it.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from auditor.compare import compare_runs
from auditor.diagnose import DRIFT
from auditor.metrics.registry import headline, lower_is_better
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.compare import Comparison

ReportFormat = Literal["md", "html", "json", "junit"]
FILE_NAMES: dict[str, str] = {
    "md": "report.md", "html": "report.html", "json": "report.json", "junit": "junit.xml",
}
MD_QUERIES = 10
MD_TEXT = 80
QUARANTINE_SHOWN = 5
ASSETS = "assets"  # beside the run folders: one plotly.js for every report
GATE_MARKS = {"passed": "✅", "failed": "❌", "not_evaluated": "⏭️"}
GATE_WORDS = {"passed": "pass", "failed": "fail", "not_evaluated": "not evaluated"}


def run_summary(store: Store, run_id: str) -> dict[str, Any]:
    """The machine-readable summary of a run (what ``--json`` prints)."""
    return _summary(store, store.run(run_id), store.cause_counts(run_id))


def drift_sentence(queries: int) -> str:
    return (f"production served different results than the index returns today for "
            f"{queries} quer{'y' if queries == 1 else 'ies'} (drift)")


def split_drift(causes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Failure causes without drift, and drift on its own (queries, share, sentence)."""
    drift = next((c for c in causes if c["cause"] == DRIFT), None)
    queries = drift["queries"] if drift else 0
    return ([c for c in causes if c["cause"] != DRIFT],
            {"queries": queries, "share": drift["share"] if drift else 0.0,
             "sentence": drift_sentence(queries) if queries else None})


def _summary(store: Store, run_row: dict[str, Any], causes: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """``causes`` holds every stored cause, drift included under its name (the CLI lists it
    apart); ``drift`` says it in words. Reports show only failure causes."""
    drift = split_drift(causes)[1]
    return {
        "run_id": run_row["run_id"],
        "status": run_row["status"],
        "status_reason": run_row["status_reason"],
        "store": str(store.path),
        "backend": run_row["backend"],
        "mode": run_row["mode"],
        "level": run_row["level"],
        "counts": run_row["counts"],
        "metrics": {
            row["metric"]: {"mean": row["mean"], "n": row["n"], "undefined": row["undefined"]}
            for row in store.metric_means(run_row["run_id"])
        },
        "causes": {row["cause"]: {"queries": row["queries"], "share": row["share"]}
                   for row in causes},
        "drift": drift,
        "sentences": store.sentence_counts(run_row["run_id"]),
        "corpus": (run_row["counts"] or {}).get("corpus", {}),
    }


# gathering ---------------------------------------------------------------------------------
def build_report(store: Store, run_id: str, *, comparison: Comparison | None = None,
                 limit: int = 20, trend_runs: int = 30) -> dict[str, Any]:
    """Everything a report of ``run_id`` shows, JSON-safe (the ``--format json`` output).

    ``comparison`` is the one the verdict computed; without it, a run that has a baseline is
    compared again on the metrics its gates tested."""
    row = store.run(run_id)
    config = row["config"] or {}
    every_cause = store.cause_counts(run_id)
    causes = split_drift(every_cause)[0]
    summary = _summary(store, row, every_cause)
    gates = store.gates(run_id)
    baseline = row.get("baseline_run_id")
    if comparison is None and baseline:
        tested = [r["metric"] for r in store.comparison_rows(run_id)] or None
        comparison = compare_runs(store, baseline, run_id, metrics=tested,
                                  k=config.get("diagnose_k", 10), limit=limit)
    compared = _comparison(comparison) if comparison else None
    names = _headline(summary["metrics"], config, gates, compared)
    quarantine = store.quarantine(run_id)
    data = {
        "generated_at": datetime.now(UTC),
        "run_id": run_id,
        "summary": summary,
        "run": {key: row[key] for key in ("started_at", "finished_at", "code_version",
                                          "fingerprint")},
        "manifest": row.get("manifest"),
        "baseline_run_id": baseline,
        "gate_status": row.get("gate_status"),
        "gates": gates,
        "verdict": _verdict_history(store.verdicts(run_id)),
        "headline": _headline_rows(summary["metrics"], names, compared),
        "comparison": compared,
        "trend": _trend(store, row, names, trend_runs),
        "causes": _causes(causes, compared),
        "scatter": _scatter(store, run_id, summary["metrics"], config),
        "quarantine": {"count": len(quarantine), "entries": quarantine[:QUARANTINE_SHOWN]},
    }
    return _jsonable(data)


def _verdict_history(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest verdict's number, baseline reason and warnings, and the earlier ones."""
    latest = verdicts[0] if verdicts else {}
    return {
        "number": latest.get("verdict_id"),
        "created_at": latest.get("created_at"),
        "baseline_reason": latest.get("baseline_reason"),
        "warnings": latest.get("warnings") or [],
        "earlier": [{key: v[key] for key in ("verdict_id", "created_at", "gate_status",
                                             "baseline_run_id")} for v in verdicts[1:]],
    }


def _comparison(comparison: Comparison) -> dict[str, Any]:
    data = comparison.to_dict()
    new = [c for c in data["new_cause_counts"] if c["cause"] != DRIFT]
    data["new_causes_by_cause"] = _group_causes(new, data["new_causes"])
    return data


def _group_causes(counts: list[dict[str, Any]], listed: Iterable[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Queries per new cause (over all new pairs) and the ids of the listed ones."""
    ids: dict[str, list[str]] = {}
    for change in listed:
        group = ids.setdefault(change["cause"], [])
        if change["query_id"] not in group:
            group.append(change["query_id"])
    return [{"cause": c["cause"], "queries": c["queries"], "query_ids": ids.get(c["cause"], [])}
            for c in counts]


def _headline(metrics: dict[str, Any], config: dict[str, Any], gates: list[dict[str, Any]],
              comparison: dict[str, Any] | None) -> list[str]:
    """The metrics a reader looks at first: the ones the comparison tested (or, without one,
    the default tested ones at ``diagnose_k``) and the gated ones."""
    if comparison:
        names = [m["metric"] for m in comparison["metrics"]]
    else:
        names = headline(config.get("diagnose_k", 10))
    names += [g["metric"] for g in gates]
    return [name for name in dict.fromkeys(names) if name in metrics]


def _headline_rows(metrics: dict[str, Any], names: list[str],
                   comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    deltas = {m["metric"]: m for m in (comparison or {}).get("metrics", [])}
    rows = []
    for name in names:
        delta = deltas.get(name, {})
        rows.append({"metric": name, "mean": metrics[name]["mean"], "n": metrics[name]["n"],
                     **{key: delta.get(key) for key in
                        ("delta", "ci_low", "ci_high", "p_holm", "baseline_mean")},
                     "lower_is_better": lower_is_better(name)})
    return rows


def _trend(store: Store, row: dict[str, Any], names: list[str], runs: int
           ) -> list[dict[str, Any]]:
    """The metrics over the newest ``runs`` runs like this one (same backend, mode and
    level), up to this one: never a newer run, nor another backend's."""
    key = (row["backend"], row["mode"], row["level"])
    every = store.runs()  # newest first
    like = [r for r in every if (r["backend"], r["mode"], r["level"]) == key
            and r["started_at"] <= row["started_at"]][:runs]
    if not like:
        return []
    oldest = like[-1]["started_at"]
    wanted = {r["run_id"] for r in like}
    newer = sum(r["started_at"] >= oldest for r in every)  # store.trend reads the newest runs
    return [t for t in store.trend(names, limit=newer) if t["run_id"] in wanted]


def _causes(causes: list[dict[str, Any]], comparison: dict[str, Any] | None
            ) -> list[dict[str, Any]]:
    """Queries per cause: with a baseline, both runs' counts on the queries both answered
    (like with like); otherwise this run's, over its replayed queries."""
    if not comparison:
        return [{**c, "baseline": None, "baseline_share": None} for c in causes]
    shared = max(comparison["shared_queries"], 1)
    return [{"cause": c["cause"], "queries": c["current"], "share": c["current"] / shared,
             "baseline": c["baseline"], "baseline_share": c["baseline"] / shared}
            for c in comparison["cause_counts"] if c["cause"] != DRIFT]


def _scatter(store: Store, run_id: str, metrics: dict[str, Any], config: dict[str, Any]
             ) -> dict[str, Any]:
    """How many documents each answer needs (doc-level set cover) and gatherable@k."""
    with store.connect(read_only=True) as con:
        sizes = con.execute(
            "SELECT size, count(*) AS queries, count(*) FILTER (WHERE approx) AS approx "
            "FROM scatter WHERE run_id = ? AND level = 'doc' GROUP BY size "
            "ORDER BY size NULLS LAST", [run_id]).fetchall()
    limit = config.get("scatter_limit", 3)
    gatherable = sorted(((int(name.split("@")[1]), value["mean"]) for name, value in
                         metrics.items() if name.startswith("gatherable@")))
    return {
        "limit": limit,
        "sizes": [{"size": s, "queries": q, "approx": a} for s, q, a in sizes],
        "scattered": sum(q for s, q, _ in sizes if s is not None and s > limit),
        "gatherable": [{"k": k, "mean": mean} for k, mean in gatherable],
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: timestamps as ISO text, NaN and infinities as null."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


# small formatting shared by the renderers -------------------------------------------------
def status_ok(data: dict[str, Any]) -> bool:
    """Green when the gates passed, or, on an ungated run, when the run completed."""
    if data["gate_status"] is not None:
        return data["gate_status"] == "passed"
    return data["summary"]["status"] == "complete"


def state(data: dict[str, Any]) -> str:
    """passed | failed | not_evaluated | not gated: what the banner and icons say."""
    if data["gate_status"] is not None:
        return data["gate_status"]
    return "not gated" if data["summary"]["status"] == "complete" else "failed"


def gate_status(gate: dict[str, Any]) -> str:
    """A gate row's status (rows from before the status column carry ``passed`` only)."""
    return gate.get("status") or ("passed" if gate["passed"] else "failed")


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _ci(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return "—"
    return f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def _failed_first(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"failed": 0, "not_evaluated": 1, "passed": 2}
    return sorted(gates, key=lambda g: (order.get(gate_status(g), 1), g["gate"]))


def gate_tally(gates: list[dict[str, Any]]) -> dict[str, int]:
    tally = {"passed": 0, "failed": 0, "not_evaluated": 0}
    for gate in gates:
        tally[gate_status(gate)] = tally.get(gate_status(gate), 0) + 1
    return tally


def notes(data: dict[str, Any]) -> list[str]:
    """Sentences a reader must not miss: why nothing was compared, weak judgments, drift,
    and that this verdict replaced earlier ones."""
    verdict = data.get("verdict") or {}
    lines = []
    reason = verdict.get("baseline_reason")
    if reason and not data["baseline_run_id"]:
        relative = any(g["kind"] == "max_drop" for g in data["gates"])
        lines.append(reason[0].upper() + reason[1:]
                     + (", so the regression gates are not evaluated." if relative else "."))
    lines += verdict.get("warnings") or []
    drift = data["summary"].get("drift") or {}
    if drift.get("sentence"):
        lines.append(drift["sentence"][0].upper() + drift["sentence"][1:] + ".")
    earlier = verdict.get("earlier") or []
    if earlier:
        previous = earlier[0]
        lines.append(
            f"This is verdict {verdict.get('number')} on this run, which was judged before: "
            f"verdict {previous['verdict_id']} said {previous['gate_status']} "
            f"({str(previous['created_at'])[:19]}). Earlier verdicts are kept in the store "
            f"(`auditor gate` history) and their reports in verdict-N/ folders.")
    return lines


def _truncate(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# Markdown ------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]|<&])")
_AUTOLINK = re.compile(r"([@#])")  # @mention, #123 issue reference
_BARE_URL = re.compile(r"\b(?:https?|ftp)(://)|\bwww(\.)", re.IGNORECASE)
_ZWJ = "\u200d"


def md_escape(text: str, length: int | None = None) -> str:
    """Untrusted text made inert in Markdown: one line, no markup, no HTML, no entity, no
    table break, no autolink (``@user``, ``#12`` and bare URLs). Backslash escapes
    (CommonMark) keep the raw text readable in a chat too."""
    text = _truncate(str(text), length) if length else " ".join(str(text).split())
    text = _BARE_URL.sub(_defang, text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(rf"\1{_ZWJ}", text)


def _defang(match: re.Match[str]) -> str:
    """``http://`` → ``http[:]//``, ``www.`` → ``www[.]``: no longer a link anywhere."""
    text = match.group(0)
    return text.replace("://", "[:]//") if match.group(1) else text[:-1] + "[.]"


def _md_code(text: str) -> str:
    """Our own names (gates, metrics) as code; escaped text if a backtick would break it."""
    plain = not any(char in text for char in "`|\n")
    return f"`{text}`" if plain else md_escape(text)


def render_markdown(data: dict[str, Any]) -> str:
    """A short summary for a pull-request comment or a chat message."""
    parts = [_md_status(data), _md_notes(data), _md_gates(data["gates"]), _md_metrics(data)]
    comparison = data["comparison"] or {}
    parts += [_md_regressed(comparison), _md_new_causes(comparison), _md_causes(data),
              _md_footer(data)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _md_status(data: dict[str, Any]) -> str:
    summary = data["summary"]
    verdict = state(data)
    icon = {"passed": "✅", "not_evaluated": "⚠️", "not gated": "✅"}.get(verdict, "❌")
    gates = {"passed": "gates passed", "failed": "gates failed",
             "not_evaluated": "gates not evaluated"}.get(data["gate_status"] or "", "not gated")
    baseline = f"baseline `{data['baseline_run_id']}`" if data["baseline_run_id"] else \
        "no baseline"
    counts = summary["counts"] or {}
    line = (f"### {icon} Retrieval audit `{data['run_id']}`: {gates}\n\n"
            f"run {summary['status']} · {baseline} · {counts.get('replayed', 0)} queries "
            f"replayed · {summary['backend']} {summary['mode']} ({summary['level']} level)")
    if summary["status_reason"]:
        line += f"\n\n> {md_escape(summary['status_reason'], 200)}"
    return line


def _md_notes(data: dict[str, Any]) -> str:
    return "\n".join(f"> {md_escape(line)}  " for line in notes(data))


def _md_gates(gates: list[dict[str, Any]]) -> str:
    if not gates:
        return "No gates were evaluated for this run."
    tally = gate_tally(gates)
    skipped = (f", {tally['not_evaluated']} not evaluated" if tally["not_evaluated"] else "")
    lines = [f"**Gates**: {tally['failed']} of {len(gates)} failed{skipped}", "",
             "| | gate | value | reason |", "|---|---|---|---|"]
    for gate in _failed_first(gates):
        status = gate_status(gate)
        lines.append(f"| {GATE_MARKS[status]} {GATE_WORDS[status]} | {_md_code(gate['gate'])} | "
                     f"{_num(gate['value'])} | {md_escape(gate['reason'])} |")
    return "\n".join(lines)


def _md_metrics(data: dict[str, Any]) -> str:
    if not data["headline"]:
        return ""
    lines = ["| metric | mean | n | Δ vs baseline | 95% CI | Holm p |",
             "|---|---:|---:|---:|---|---:|"]
    for row in data["headline"]:
        lines.append(f"| {_md_code(row['metric'])} | {_num(row['mean'])} | {row['n']} | "
                     f"{_num(row['delta'], signed=True)} | {_ci(row)} | {_p(row['p_holm'])} |")
    return "\n".join(lines)


def _md_regressed(comparison: dict[str, Any]) -> str:
    regressed = comparison.get("regressed") or []
    if not regressed:
        return ""
    total = comparison.get("regressed_total") or len(regressed)
    lines = [f"**Regressed queries**: {total} (top {min(len(regressed), MD_QUERIES)})", "",
             "| query | text | metric | before → after | causes now |", "|---|---|---|---|---|"]
    for change in regressed[:MD_QUERIES]:
        causes = ", ".join(md_escape(c) for c in change.get("causes_after") or []) or "—"
        lines.append(f"| {md_escape(change['query_id'], 40)} | "
                     f"{md_escape(change['query'], MD_TEXT)} | {_md_code(change['metric'])} | "
                     f"{change['baseline']:.3f} → {change['current']:.3f} | {causes} |")
    return "\n".join(lines)


def _md_new_causes(comparison: dict[str, Any]) -> str:
    groups = comparison.get("new_causes_by_cause") or []
    if not groups:
        return ""
    lines = ["**New causes** (not seen for these queries in the baseline):"]
    for group in groups:
        shown = group["query_ids"][:MD_QUERIES]
        ids = ", ".join(md_escape(q, 40) for q in shown)
        if ids and len(shown) < group["queries"]:
            ids += f"; first {len(shown)} shown"
        lines.append(f"- {md_escape(group['cause'])}: {group['queries']} queries"
                     + (f" ({ids})" if ids else ""))
    return "\n".join(lines)


def _md_causes(data: dict[str, Any]) -> str:
    causes = data["causes"]
    quarantined = data["quarantine"]["count"]
    text = ""
    if causes:
        scope = (f" (on the {data['comparison']['shared_queries']} queries shared with the "
                 "baseline)" if data["comparison"] else "")
        text = f"**Causes in this run**{scope}: " + " · ".join(
            f"{md_escape(c['cause'])} {c['queries']} ({c['share']:.0%})" for c in causes)
    if quarantined:
        text += (f"\n\n**Quarantine**: {quarantined} input record"
                 f"{'s' if quarantined > 1 else ''} set aside (see the full report).")
    return text.strip()


def _md_footer(data: dict[str, Any]) -> str:
    files = data.get("files") or {}
    where = f"Full report: `{files['html']}`. " if "html" in files else ""
    return (f"{where}Trace a query: `auditor trace QUERY_ID --run {data['run_id']}` · "
            f"store `{data['summary']['store']}`")


# JSON and JUnit ------------------------------------------------------------------------------
def render_json(data: dict[str, Any]) -> str:
    """``data`` from ``build_report``, already JSON-safe."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(value: Any) -> str:
    """Text XML 1.0 can hold (ElementTree escapes markup but not control characters)."""
    return _XML_ILLEGAL.sub("?", "" if value is None else str(value))


def _timestamp(value: str) -> str:
    """ISO 8601 in UTC without fraction or offset, the form JUnit's schema takes."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat()


def render_junit(data: dict[str, Any]) -> str:
    """JUnit XML: one test case per gate, so CI shows a failed gate as a failed test."""
    gates = data["gates"]
    tally = gate_tally(gates)
    counts = {"tests": str(len(gates)), "failures": str(tally["failed"]), "errors": "0",
              "skipped": str(tally["not_evaluated"]), "time": "0"}
    root = ET.Element("testsuites", {"name": "retrieval-audit", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": "retrieval-audit", **counts, "timestamp": _timestamp(data["run"]["started_at"])})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", data["run_id"]), ("baseline_run_id", data["baseline_run_id"]),
                        ("run_status", data["summary"]["status"]),
                        ("gate_status", data["gate_status"] or "not gated")):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for gate in gates:
        case = ET.SubElement(suite, "testcase", {
            "classname": "auditor.gates", "name": _xml(gate["gate"]), "time": "0"})
        if gate_status(gate) == "not_evaluated":
            ET.SubElement(case, "skipped", {"message": _xml(gate["reason"])})
        elif gate_status(gate) == "failed":
            failure = ET.SubElement(case, "failure", {
                "message": _xml(gate["reason"]), "type": f"gate.{gate['kind']}"})
            failure.text = _xml(
                f"{gate['reason']}\nmetric: {gate['metric']}\nkind: {gate['kind']}\n"
                f"value: {_num(gate['value'])}\nthreshold: {gate['threshold']}\n"
                f"run: {data['run_id']}\nbaseline: {data['baseline_run_id'] or 'none'}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# HTML ----------------------------------------------------------------------------------------
def plotly_asset(directory: Path) -> Path:
    """``directory/assets/plotly-<version>.min.js``, written once (atomically: concurrent
    runs may race) and shared by every report under ``directory``."""
    import plotly
    from plotly.offline import get_plotlyjs

    asset = directory / ASSETS / f"plotly-{plotly.__version__}.min.js"
    if not asset.exists():
        asset.parent.mkdir(parents=True, exist_ok=True)
        partial = asset.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(get_plotlyjs(), encoding="utf-8")
        partial.replace(asset)
    return asset


def render_html(data: dict[str, Any], plotly_src: str | None = None) -> str:
    """The HTML page. ``plotly_src``: a relative URL of the shared plotly.js (small page
    beside the asset); None inlines plotly.js (one standalone page, ≈4.7 MB)."""
    import jinja2
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(loader=jinja2.PackageLoader("auditor", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=_num, p=_p, ci=_ci, truncate_text=_truncate)
    # Only library code and chart markup built from numbers and metric names are marked safe.
    charts = [{**chart, "html": Markup(chart["html"])} for chart in _charts(data)]
    manifest = data["manifest"] or {"code_version": data["run"]["code_version"],
                                    "fingerprint": data["run"]["fingerprint"]}
    return env.get_template("report.html.j2").render(
        data=data, ok=status_ok(data), state=state(data), gates=_failed_first(data["gates"]),
        charts=charts, tally=gate_tally(data["gates"]), notes=notes(data),
        gate_status=gate_status, gate_words=GATE_WORDS,
        plotlyjs=None if plotly_src else Markup(get_plotlyjs()), plotly_src=plotly_src,
        manifest=_flatten({k: v for k, v in manifest.items() if k != "counts"}),
        count_rows=_flatten(data["summary"]["counts"] or {}),
    )


def _charts(data: dict[str, Any]) -> list[dict[str, str]]:
    """Plotly figures as ``div`` snippets; plotly.js itself is inlined once by the template."""
    built = [("trend", "Headline metrics across runs", _trend_figure(data)),
             ("causes", "Why queries failed (share of queries, drift apart)",
              _cause_figure(data)),
             ("scatter", "Documents an answer needs, and gatherable@k", _scatter_figure(data)),
             ("deltas", "Change against the baseline (95% CI)", _delta_figure(data))]
    config = {"displaylogo": False, "responsive": True,
              "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
    return [{"id": name, "title": title,
             "html": figure.to_html(full_html=False, include_plotlyjs=False,
                                    div_id=f"chart-{name}", config=config)}
            for name, title, figure in built if figure is not None]


def _layout(figure: Any, height: int = 340) -> Any:
    figure.update_layout(template="plotly_white", height=height,
                         margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         legend={"orientation": "h", "y": -0.2}, font={"size": 12})
    return figure


def _trend_figure(data: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    if not data["trend"]:
        return None
    figure = go.Figure()
    for metric in dict.fromkeys(row["metric"] for row in data["trend"]):
        rows = [row for row in data["trend"] if row["metric"] == metric]
        figure.add_trace(go.Scatter(
            x=[row["started_at"] for row in rows], y=[row["mean"] for row in rows],
            customdata=[row["run_id"] for row in rows], name=metric, mode="lines+markers",
            marker_symbol=["x" if row["gate_status"] == "failed" else "circle" for row in rows],
            marker_size=9,
            hovertemplate="%{customdata}<br>" + metric + " %{y:.3f}<extra></extra>"))
    figure.update_yaxes(title="mean (× = gates failed)", rangemode="tozero")
    times = [datetime.fromisoformat(row["started_at"]) for row in data["trend"]]
    pad = (max(times) - min(times)) * 0.06 or timedelta(hours=1)
    figure.update_xaxes(range=[min(times) - pad, max(times) + pad])
    return _layout(figure)


def _cause_figure(data: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    causes = data["causes"]
    if not causes:
        return None
    figure = go.Figure(go.Bar(
        y=[c["cause"] for c in causes], x=[c["share"] for c in causes], orientation="h",
        name="this run", text=[f"{c['queries']}" for c in causes], marker_color="#c2410c",
        textposition="outside", textangle=0, cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%} (%{text} queries)<extra></extra>"))
    if data["comparison"]:
        figure.add_trace(go.Bar(
            y=[c["cause"] for c in causes], x=[c["baseline_share"] for c in causes],
            orientation="h", name="baseline", marker_color="#94a3b8"))
    figure.update_xaxes(tickformat=".0%", title="share of queries")
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, height=120 + 32 * len(causes))


def _scatter_figure(data: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    scatter = data["scatter"]
    if not scatter["sizes"] and not scatter["gatherable"]:
        return None
    figure = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.12,
                           subplot_titles=("queries by documents needed", "gatherable@k"))
    sizes = scatter["sizes"]
    figure.add_trace(go.Bar(
        x=[str(s["size"]) if s["size"] is not None else "none" for s in sizes],
        y=[s["queries"] for s in sizes], name="queries", showlegend=False,
        marker_color=["#dc2626" if (s["size"] or 0) > scatter["limit"] else "#2563eb"
                      for s in sizes]), row=1, col=1)
    figure.add_trace(go.Bar(
        x=[f"@{g['k']}" for g in scatter["gatherable"]],
        y=[g["mean"] for g in scatter["gatherable"]], name="gatherable", showlegend=False,
        marker_color="#0d9488"), row=1, col=2)
    figure.update_xaxes(type="category")
    figure.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    figure = _layout(figure)
    figure.update_layout(margin={"t": 30})
    return figure


def _delta_figure(data: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    rows = [row for row in data["headline"] if row["delta"] is not None]
    if not rows:
        return None
    figure = go.Figure(go.Scatter(
        x=[row["delta"] for row in rows], y=[row["metric"] for row in rows], mode="markers",
        marker={"size": 10, "color": "#2563eb"}, error_x={
            "type": "data", "symmetric": False,
            "array": [_gap(row["ci_high"], row["delta"]) for row in rows],
            "arrayminus": [_gap(row["delta"], row["ci_low"]) for row in rows]},
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    figure.add_vline(x=0, line_dash="dot", line_color="#64748b")
    figure.update_xaxes(title="current − baseline", zeroline=False)
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, height=120 + 40 * len(rows))


def _gap(high: float | None, low: float | None) -> float:
    return 0.0 if high is None or low is None else high - low


def _flatten(value: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested manifest as ``a.b`` → value rows; lists stay compact JSON."""
    rows: list[tuple[str, str]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            rows += _flatten(item, f"{name}.")
        else:
            text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            rows.append((name, _truncate(text, 300)))
    return rows


# files -----------------------------------------------------------------------------------------
RENDERERS = {"md": render_markdown, "html": render_html, "json": render_json,
             "junit": render_junit}


def write_reports(store: Store, run_id: str, directory: Path,
                  formats: Iterable[ReportFormat] = ("md", "html", "json", "junit"),
                  comparison: Comparison | None = None) -> dict[str, Path]:
    """Write each format's file into ``directory`` (created); returns format → path.
    ``comparison``: the verdict's, so the run is not compared again."""
    formats = list(formats)
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise ValueError(f"unknown report format {', '.join(unknown)}: use md, html, json, junit")
    directory.mkdir(parents=True, exist_ok=True)
    data = build_report(store, run_id, comparison=comparison)
    paths = {fmt: directory / FILE_NAMES[fmt] for fmt in formats}
    data["files"] = {fmt: str(path) for fmt, path in paths.items()}
    for fmt, path in paths.items():
        if fmt == "html":
            text = render_html(data, plotly_src=asset_src(directory.parent, directory))
        else:
            text = RENDERERS[fmt](data)
        path.write_text(text, encoding="utf-8")
    return paths


def asset_src(root: Path, page_directory: Path) -> str:
    """The shared plotly.js under ``root``, as a URL relative to a page in
    ``page_directory`` (forward slashes, so it works from a browser on any system)."""
    asset = plotly_asset(root)
    return Path(os.path.relpath(asset, page_directory)).as_posix()


def move_html(page: Path, target: Path) -> None:
    """Move a report page, keeping its link to the shared plotly.js valid."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script src="([^"]*plotly-[^"/]*\.min\.js)"', text)
    if match:
        asset = (page.parent / match.group(1)).resolve()
        new = Path(os.path.relpath(asset, target.parent)).as_posix()
        text = text.replace(match.group(0), f'<script src="{new}"', 1)
    target.write_text(text, encoding="utf-8")
    page.unlink()
