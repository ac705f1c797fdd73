"""docker-compose.yml describes the production topology with the same settings the code reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.runtime.settings import SERVICES, Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_service_runs_in_compose_with_its_infrastructure():
    services = compose()
    for name in SERVICES:
        assert name in services, f"{name} missing from docker-compose.yml"
        assert services[name]["command"] == ["service", name]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["postgres"]["image"].startswith("postgres")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert "oms migrate" in " ".join(services["migrate"]["entrypoint"])
    assert "oms topics create" in " ".join(services["migrate"]["entrypoint"])


def test_every_variable_compose_sets_is_a_known_setting():
    known = {f"OMS_{name.upper()}" for name in Settings.model_fields}
    for name in (*SERVICES, "migrate"):
        environment = compose()[name]["environment"]
        assert environment, name
        unknown = set(environment) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"
        Settings(**{key[4:].lower(): value for key, value in environment.items()})  # and they validate


def test_compose_points_services_at_compose_hosts():
    environment = compose()["invoicing"]["environment"]
    assert environment["OMS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "@postgres:5432/" in environment["OMS_DATABASE_URL"]
    assert environment["OMS_SMTP_HOST"] == "mailpit"
    assert environment["OMS_KAFKA_ENABLE_IDEMPOTENCE"] == "true"  # real Kafka: idempotent producer on
