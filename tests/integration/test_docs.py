"""The README documents every setting and every metric (docs checked by tests)."""

from __future__ import annotations

import tomllib
from itertools import takewhile

from auditor.config import AuditSettings
from auditor.metrics.registry import glossary
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_reference() -> None:
    missing = [name for name in AuditSettings.model_fields if f"| `{name}` |" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_every_metric_is_in_the_glossary_as_the_registry_words_it() -> None:
    missing = [form for form, line in glossary().items() if f"| `{form}` | {line} |" not in README]
    assert not missing, f"metrics missing from README or worded otherwise: {missing}"


def test_the_glossary_names_no_metric_the_registry_does_not_know() -> None:
    rows = []
    for table in README.split("| metric | definition |")[1:]:
        lines = table.strip().splitlines()[1:]  # after the |---| line
        rows += [line.split("`")[1] for line in takewhile(lambda x: x.startswith("|"), lines)]
    assert set(rows) == set(glossary()), set(rows) ^ set(glossary())


def test_shipped_config_only_uses_known_settings() -> None:
    shipped = tomllib.loads((ROOT / "audit.toml").read_text())
    assert set(shipped) <= set(AuditSettings.model_fields)


def test_quickstart_is_the_two_make_commands_and_ci_runs_make_test() -> None:
    assert "make demo" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_cause_has_its_rule_line() -> None:
    from auditor.diagnose import RULES

    missing = [c for c, rule in RULES.items() if f"| `{c}` | {rule} |" not in README]
    assert not missing, f"causes missing from README: {missing}"


def test_every_log_field_and_its_older_name_is_in_the_log_table() -> None:
    """The README's log table names each field of a log record, and the name it had before."""
    from auditor.records import OLD_LOG_FIELDS, LogRecord

    missing = [name for name in LogRecord.model_fields if f"| `{name}` |" not in README]
    assert not missing, f"log fields missing from the README's log table: {missing}"
    rows = {f"| `{new}` | no | `{old}` |" for old, new in OLD_LOG_FIELDS.items()}
    assert all(row in README for row in rows), rows
