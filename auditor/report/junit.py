"""The JUnit XML report: one test case per gate, so CI shows a failed gate as a failed test
(a gate that was not evaluated is ``skipped``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from auditor.report.text import gate_tally, num

if TYPE_CHECKING:
    from auditor.report.gather import Report

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


def render_junit(report: Report) -> str:
    """JUnit XML: one test case per gate, so CI shows a failed gate as a failed test."""
    verdict = report.verdict
    gates = verdict.gates
    tally = gate_tally(gates)
    counts = {"tests": str(len(gates)), "failures": str(tally["failed"]), "errors": "0",
              "skipped": str(tally["not_evaluated"]), "time": "0"}
    root = ET.Element("testsuites", {"name": "retrieval-audit", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": "retrieval-audit", **counts, "timestamp": _timestamp(report.run["started_at"])})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", report.run_id), ("baseline_run_id", verdict.baseline_run_id),
                        ("run_status", report.summary["status"]),
                        ("gate_status", verdict.gate_status or "not gated")):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for gate in gates:
        case = ET.SubElement(suite, "testcase", {
            "classname": "auditor.gates", "name": _xml(gate.gate), "time": "0"})
        if gate.status == "not_evaluated":
            ET.SubElement(case, "skipped", {"message": _xml(gate.reason)})
        elif gate.status == "failed":
            failure = ET.SubElement(case, "failure", {
                "message": _xml(gate.reason), "type": f"gate.{gate.kind}"})
            failure.text = _xml(
                f"{gate.reason}\nmetric: {gate.metric}\nkind: {gate.kind}\n"
                f"value: {num(gate.value)}\nthreshold: {gate.threshold}\n"
                f"run: {report.run_id}\nbaseline: {verdict.baseline_run_id or 'none'}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
