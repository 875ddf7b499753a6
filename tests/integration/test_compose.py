"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
README = (ROOT / "README.md").read_text()


def test_services_images_and_loopback_ports() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"elasticsearch", "dashboard", "nightly", "ray-head",
                             "ray-worker"}
    image = services["elasticsearch"]["image"]
    assert image.startswith("docker.elastic.co/elasticsearch/elasticsearch:9.")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    assert "discovery.type=single-node" in services["elasticsearch"]["environment"]


def test_volumes_are_declared_and_shared_by_the_auditor_services() -> None:
    declared = set(COMPOSE["volumes"])
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared
    store = {s["environment"][0] for s in (COMPOSE["services"]["dashboard"],)}
    assert store == {"AUDITOR_STORE=/data/audit.duckdb"}
    nightly_env = COMPOSE["services"]["nightly"]["environment"]
    assert "AUDITOR_STORE=/data/audit.duckdb" in nightly_env
    assert "AUDITOR_ES_URL=http://elasticsearch:9200" in nightly_env


def test_secrets_are_passed_through_not_written() -> None:
    env = COMPOSE["services"]["nightly"]["environment"]
    for secret in ("AUDITOR_ES_API_KEY", "AUDITOR_WEBHOOK_URL"):
        assert secret in env  # name only: the value comes from the user's shell
        assert not any(item.startswith(f"{secret}=") for item in env)


def test_services_run_commands_the_cli_has() -> None:
    from typer.main import get_command

    from auditor.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    nightly = COMPOSE["services"]["nightly"]["command"]
    dashboard = COMPOSE["services"]["dashboard"]["command"]
    assert nightly[:2] == ["schedule", "--cron"] and dashboard[0] == "dashboard"
    assert {nightly[0], dashboard[0]} <= commands


def test_readme_documents_compose_with_the_same_names() -> None:
    assert "docker compose up -d elasticsearch" in README
    assert "127.0.0.1:9200" in README
    image_tag = COMPOSE["services"]["elasticsearch"]["image"].rsplit(":", 1)[1]
    assert image_tag in README


def test_the_nightly_job_audits_on_the_ray_services() -> None:
    """Head and workers run `ray start` from the auditor's own image (the same code); the
    nightly job joins the head; the cluster's token is passed through, never written."""
    services = COMPOSE["services"]
    head, worker, nightly = services["ray-head"], services["ray-worker"], services["nightly"]
    assert head["build"] == worker["build"] == nightly["build"] == "."
    assert head["entrypoint"] == worker["entrypoint"] == ["ray"]
    assert head["command"][:2] == ["start", "--head"] and "--port=6379" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    assert {"AUDITOR_EXECUTOR=ray", "AUDITOR_RAY_ADDRESS=ray-head:6379"} <= set(
        nightly["environment"])
    for service in (head, worker, nightly):
        assert "RAY_AUTH_TOKEN" in service["environment"]
        assert "RAY_AUTH_MODE=token" in service["environment"]
    assert "ray-head" in nightly["depends_on"]
    assert "docker compose up -d --scale ray-worker=" in README
