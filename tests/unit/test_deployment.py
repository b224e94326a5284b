"""The compose file and .env.example: parsed and checked, since no Docker engine runs here."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ENV_EXAMPLE = {
    line.split("=", 1)[0]
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
}


def test_every_service_waits_for_what_it_needs_or_is_health_checked() -> None:
    for name, service in COMPOSE["services"].items():
        depends = service.get("depends_on", {})
        assert "healthcheck" in service or depends, f"{name}: no health check, no dependency"
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends.items():
            assert dependency in COMPOSE["services"], f"{name} depends on unknown {dependency}"
            assert rule.get("condition") in (
                "service_healthy",
                "service_completed_successfully",
            ), f"{name} starts before {dependency} is ready"


def test_the_scale_out_services_are_there() -> None:
    services = COMPOSE["services"]
    assert {"redis", "postgres", "web", "monitor", "comfyui-simulator"} <= set(services)
    assert services["comfyui-simulator"]["profiles"] == ["simulator"]
    assert "daphne" in services["web"]["command"]
    assert "run_comfy_monitor" in " ".join(services["monitor"]["command"])
    # Replicas (--scale web=N) need no fixed host port.
    assert all(":" not in str(port) for port in services["web"].get("ports", []))


def test_every_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    settings = (ROOT / "lockngen" / "settings.py").read_text()
    used |= set(re.findall(r'(?:environ\.get|env_\w+)\(\s*"([A-Z_]+)"', settings))
    missing = used - ENV_EXAMPLE
    assert not missing, f"not in .env.example: {sorted(missing)}"
