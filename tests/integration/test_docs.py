"""The README documents every setting and every metric (docs checked by tests)."""

from __future__ import annotations

import tomllib

from auditor.config import AuditSettings
from auditor.metrics import MEASURES
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_reference() -> None:
    missing = [name for name in AuditSettings.model_fields if f"| `{name}` |" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_every_metric_is_in_the_glossary() -> None:
    missing = [m for m in MEASURES if f"| `{m}@k` |" not in README]
    assert not missing, f"metrics missing from README: {missing}"


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


def test_every_stored_metric_family_is_in_the_glossary() -> None:
    for name in ("answer_coverage", "answer_coverage@k", "index_coverage", "silver_recall@k",
                 "scatter_docs", "scatter_chunks", "scatter_judged", "gatherable@k",
                 "effective_sources",
                 "overlap@k", "rbo", "served_recall@k", "recall_delta@k"):
        assert f"| `{name}` |" in README, name
