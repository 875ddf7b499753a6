"""The Markdown report: a short summary for a pull-request comment or a chat message.
Logged query text is untrusted: it is escaped, one line, with no autolink."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auditor.gates import GateResult
from auditor.numerals import p_value
from auditor.report.text import (
    GATE_MARKS,
    GATE_WORDS,
    ci,
    failed_first,
    gate_tally,
    mean_cell,
    notes,
    num,
    state,
    truncate,
)

if TYPE_CHECKING:
    from auditor.compare import Comparison
    from auditor.report.gather import Report

MD_QUERIES = 10
MD_TEXT = 80
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]|<&])")
_AUTOLINK = re.compile(r"([@#])")  # @mention, #123 issue reference
_BARE_URL = re.compile(r"\b(?:https?|ftp)(://)|\bwww(\.)", re.IGNORECASE)
_ZWJ = "\u200d"


def md_escape(text: str, length: int | None = None) -> str:
    """Untrusted text made inert in Markdown: one line, no markup, no HTML, no entity, no
    table break, no autolink (``@user``, ``#12`` and bare URLs). Backslash escapes
    (CommonMark) keep the raw text readable in a chat too."""
    text = truncate(str(text), length) if length else " ".join(str(text).split())
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


def render_markdown(report: Report) -> str:
    """A short summary for a pull-request comment or a chat message."""
    comparison = report.verdict.comparison
    parts = [_md_status(report), _md_notes(report), _md_gates(report.verdict.gates),
             _md_metrics(report), _md_regressed(comparison), _md_new_causes(report.new_causes),
             _md_causes(report), _md_gaps(report), _md_footer(report)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _md_status(report: Report) -> str:
    summary, verdict = report.summary, report.verdict
    icon = {"passed": "✅", "not_evaluated": "⚠️", "not gated": "✅"}.get(state(report), "❌")
    gates = {"passed": "gates passed", "failed": "gates failed",
             "not_evaluated": "gates not evaluated"}.get(verdict.gate_status or "", "not gated")
    baseline = f"baseline `{verdict.baseline_run_id}`" if verdict.baseline_run_id else \
        "no baseline"
    counts = summary["counts"] or {}
    line = (f"### {icon} Retrieval audit `{report.run_id}`: {gates}\n\n"
            f"run {summary['status']} · {baseline} · {counts.get('replayed', 0)} queries "
            f"replayed · {summary['backend']} {summary['mode']} ({summary['level']} level)")
    if summary.get("sample"):
        line += f" · **{summary['sample']['sampled']}**"
    if summary["status_reason"]:
        line += f"\n\n> {md_escape(summary['status_reason'], 200)}"
    return line


def _md_notes(report: Report) -> str:
    return "\n".join(f"> {md_escape(line)}  " for line in notes(report))


def _md_gates(gates: Sequence[GateResult]) -> str:
    if not gates:
        return "No gates were evaluated for this run."
    tally = gate_tally(gates)
    skipped = (f", {tally['not_evaluated']} not evaluated" if tally["not_evaluated"] else "")
    lines = [f"**Gates**: {tally['failed']} of {len(gates)} failed{skipped}", "",
             "| | gate | value | reason |", "|---|---|---|---|"]
    for gate in failed_first(gates):
        lines.append(f"| {GATE_MARKS[gate.status]} {GATE_WORDS[gate.status]} | "
                     f"{_md_code(gate.gate)} | {num(gate.value)} | {md_escape(gate.reason)} |")
    return "\n".join(lines)


def _md_metrics(report: Report) -> str:
    if not report.headline:
        return ""
    lines = ["| metric | mean | n | Δ vs baseline | 95% CI | Holm p |",
             "|---|---:|---:|---:|---|---:|"]
    for row in report.headline:
        lines.append(f"| {_md_code(row['metric'])} | {mean_cell(row)} | {row['n']} | "
                     f"{num(row['delta'], signed=True)} | {ci(row)} | {p_value(row['p_holm'])} |")
    return "\n".join(lines)


def _md_regressed(comparison: Comparison | None) -> str:
    if comparison is None or not comparison.regressed:
        return ""
    regressed = comparison.regressed
    total = comparison.regressed_total or len(regressed)
    lines = [f"**Regressed queries**: {total} (top {min(len(regressed), MD_QUERIES)})", "",
             "| query | text | metric | before → after | causes now |", "|---|---|---|---|---|"]
    for change in regressed[:MD_QUERIES]:
        causes = ", ".join(md_escape(c) for c in change.causes_after) or "—"
        lines.append(f"| {md_escape(change.query_id, 40)} | "
                     f"{md_escape(change.query, MD_TEXT)} | {_md_code(change.metric)} | "
                     f"{change.baseline:.3f} → {change.current:.3f} | {causes} |")
    return "\n".join(lines)


def _md_new_causes(groups: list[dict[str, Any]]) -> str:
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


def _md_causes(report: Report) -> str:
    causes, comparison = report.causes, report.verdict.comparison
    quarantined = report.quarantine["count"]
    text = ""
    if causes:
        scope = (f" (on the {comparison.shared_queries} queries shared with the "
                 "baseline)" if comparison is not None else "")
        text = f"**Causes in this run**{scope}: " + " · ".join(
            f"{md_escape(c['cause'])} {c['queries']} ({c['share']:.0%})" for c in causes)
    sentences = report.summary["sentences"]
    if sum(sentences.values()):
        text += "\n\n**Answer sentences**: " + " · ".join(
            f"{md_escape(status)} {n}" for status, n in sentences.items())
    if quarantined:
        text += (f"\n\n**Quarantine**: {quarantined} input record"
                 f"{'s' if quarantined > 1 else ''} set aside (see the full report).")
    return text.strip()


def _md_gaps(report: Report, shown: int = 5) -> str:
    """The topics users ask about that fail most (failure share × queries), each with its
    corpus density next to its share of the queries."""
    gaps = report.gaps
    if gaps is None:
        return ""
    if not gaps["clusters"]:
        return f"**Knowledge gaps**: not evaluated ({md_escape(gaps['note'] or 'no topics')})."
    lines = [f"**Knowledge gaps** ({gaps['topics']} topics, worst first; `auditor gaps "
             f"{report.run_id}` lists all):", "",
             "| topic | queries | failing | share of queries | corpus density | top causes |",
             "|---|---:|---:|---:|---:|---|"]
    for row in gaps["clusters"][:shown]:
        density = row["corpus_density"]
        causes = ", ".join(f"{md_escape(c)} {n}" for c, n in row["top_causes"]) or "—"
        lines.append(f"| {md_escape(row['label'], 60)} | {row['queries']} | "
                     f"{row['failure_share']:.0%} | {row['query_share']:.0%} | "
                     f"{'—' if density is None else f'{density:.1%}'} | {causes} |")
    return "\n".join(lines)


def _md_footer(report: Report) -> str:
    files = report.files or {}
    where = f"Full report: `{files['html']}`. " if "html" in files else ""
    return (f"{where}Trace a query: `auditor trace QUERY_ID --run {report.run_id}` · "
            f"store `{report.summary['store']}`")
