"""The Markdown report: a short summary for a pull-request comment or a chat message.
Logged query text is untrusted: it is escaped, one line, with no autolink."""

from __future__ import annotations

import re
from typing import Any

from auditor.report.text import (
    GATE_MARKS,
    GATE_WORDS,
    ci,
    failed_first,
    gate_status,
    gate_tally,
    notes,
    num,
    p_value,
    state,
    truncate,
)

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
    for gate in failed_first(gates):
        status = gate_status(gate)
        lines.append(f"| {GATE_MARKS[status]} {GATE_WORDS[status]} | {_md_code(gate['gate'])} | "
                     f"{num(gate['value'])} | {md_escape(gate['reason'])} |")
    return "\n".join(lines)


def _md_metrics(data: dict[str, Any]) -> str:
    if not data["headline"]:
        return ""
    lines = ["| metric | mean | n | Δ vs baseline | 95% CI | Holm p |",
             "|---|---:|---:|---:|---|---:|"]
    for row in data["headline"]:
        lines.append(f"| {_md_code(row['metric'])} | {num(row['mean'])} | {row['n']} | "
                     f"{num(row['delta'], signed=True)} | {ci(row)} | {p_value(row['p_holm'])} |")
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

