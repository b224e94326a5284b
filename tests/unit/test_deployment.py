"""The compose file and .env.example: parsed and checked, since no Docker engine runs here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings

from generations import api as lockngen_api
from lockngen import launcher
from tests.support.metrics import dashboard
from tests.support.procs import daphne_args

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


# --------------------------------------------------------------------------- the proxy

NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_nginx(text: str) -> list[tuple[str, list[str], list | None]]:
    """nginx's syntax, enough to check ours: (directive, args, children or None)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list] = [[]]
    args: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append((args[0], args[1:], None))
            args = []
        elif token == "{":
            block: list = []
            stack[-1].append((args[0], args[1:], block))
            stack.append(block)
            args = []
        elif token == "}":
            assert not args, f"unterminated directive {args}"
            stack.pop()
        else:
            args.append(token.strip('"'))
    assert len(stack) == 1 and not args, "unbalanced braces"
    return stack[0]


def block(tree: list, name: str, *args: str) -> list:
    found = [c for n, a, c in tree if n == name and c is not None and list(a) == list(args)]
    assert found, f"no {name} {' '.join(args)} block"
    return found[0]


def directive(tree: list, name: str) -> list[str]:
    found = [a for n, a, c in tree if n == name and c is None]
    assert found, f"no {name} directive"
    return found[0]


def amount(value: str, units: dict[str, int]) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-z]?)", value.lower()).groups()
    return int(number) * units[unit]


NGINX = parse_nginx(NGINX_CONF.read_text())
HTTP = block(NGINX, "http")
SERVER = block(HTTP, "server")


def test_nginx_accepts_the_config(tmp_path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (the structural checks still run)")
    # Compose's service name resolves only inside compose: any address does for -t.
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.read_text().replace("server web:8000;", "server 127.0.0.1:8000;"))
    result = subprocess.run([nginx, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nginx_times_out_slow_clients() -> None:
    for name, most in (("client_header_timeout", 30), ("client_body_timeout", 60)):
        assert amount(directive(HTTP, name)[0], TIME_UNITS) <= most, name
    assert directive(HTTP, "reset_timedout_connection") == ["on"]


def test_nginx_body_limit_is_a_little_above_ours() -> None:
    ours = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    theirs = amount(directive(HTTP, "client_max_body_size")[0], SIZE_UNITS)
    assert ours < theirs <= 2 * ours, (ours, theirs)
    assert lockngen_api.MAX_BODY_BYTES == ours


def test_nginx_caps_connections_per_client() -> None:
    zone = directive(HTTP, "limit_conn_zone")
    assert zone[0] == "$binary_remote_addr"
    name = zone[1].split("=")[1].split(":")[0]
    limit = directive(HTTP, "limit_conn")
    assert limit[0] == name and 1 <= int(limit[1]) <= 256


def test_nginx_passes_websockets_with_long_timeouts() -> None:
    ws = block(SERVER, "location", "/api/ws/")
    headers = {a[0]: a[1] for n, a, c in ws if n == "proxy_set_header"}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    assert block(HTTP, "map", "$http_upgrade", "$connection_upgrade")
    assert amount(directive(ws, "proxy_read_timeout")[0], TIME_UNITS) >= 600
    assert directive(ws, "proxy_pass") == ["http://lockngen_web"]
    assert directive(block(SERVER, "location", "/"), "proxy_pass") == ["http://lockngen_web"]


def test_nginx_overwrites_the_client_address_daphne_trusts() -> None:
    for path in ("/", "/api/ws/"):
        # nginx inherits no proxy_set_header into a location that sets one: check each.
        headers = {
            a[0]: a[1] for n, a, c in block(SERVER, "location", path) if n == "proxy_set_header"
        }
        # daphne takes the first X-Forwarded-For entry: appending would keep the client's own.
        assert headers["X-Forwarded-For"] == "$remote_addr", path
        assert headers["Host"] == "$host", path
    assert directive(block(HTTP, "upstream", "lockngen_web"), "server") == ["web:8000"]


def test_only_the_proxy_is_published_and_web_trusts_it_alone() -> None:
    services = COMPOSE["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy", "grafana"}
    # Grafana (observability profile) on the host's loopback only.
    assert all(str(port).startswith("127.0.0.1:") for port in services["grafana"]["ports"])
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert "--proxy-headers" in services["web"]["command"]
    # "front" joins the proxy and web only, and leads nowhere else.
    members = {name for name, s in services.items() if "front" in s.get("networks", [])}
    assert members == {"proxy", "web"}
    assert COMPOSE["networks"]["front"]["internal"] is True


def test_the_image_runs_daphne_like_the_tests_and_run_stack() -> None:
    cmd = re.search(r"^CMD (\[.*?\])$", (ROOT / "Dockerfile").read_text(), re.S | re.M)
    args = json.loads(cmd.group(1).replace("\\\n", ""))
    tests_flags = [*launcher.DAPHNE_FLAGS, launcher.ASGI_APPLICATION]
    assert daphne_args(8000)[-len(tests_flags) :] == tests_flags
    assert args[: args.index("--ping-interval")][-1] == "--proxy-headers"
    assert args[args.index("--ping-interval") :] == tests_flags
    web = COMPOSE["services"]["web"]["command"].split()
    assert web[web.index("--ping-interval") :] == tests_flags


# --------------------------------------------------------------------------- observability


def test_the_observability_profile_scrapes_web_and_every_monitor() -> None:
    services = COMPOSE["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
    monitor = services["monitor"]["command"]
    port = monitor[monitor.index("--metrics-port") + 1]
    assert monitor[monitor.index("--metrics-host") + 1] == "0.0.0.0"
    assert port in monitor_expose(services["monitor"])
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    targets = {
        name: {(n, sd["port"]) for sd in job["dns_sd_configs"] for n in sd["names"]}
        for name, job in jobs.items()
    }
    assert targets == {"web": {("web", 8000)}, "monitor": {("monitor", int(port))}}
    for job in jobs.values():
        # The file the prometheus service writes from LOCKNGEN_METRICS_TOKEN.
        assert job["authorization"]["credentials_file"] == "/tmp/metrics-token"
    assert "/tmp/metrics-token" in services["prometheus"]["command"][0]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (services["prometheus"]["volumes"])
    )
    assert COMPOSE["x-app"]["environment"]["LOCKNGEN_METRICS_TOKEN"]


def monitor_expose(service: dict) -> set[str]:
    return {str(port) for port in service.get("expose", [])}


def test_grafana_is_provisioned_from_deploy() -> None:
    volumes = COMPOSE["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load((provisioning / "dashboards" / "lockngen.yml").read_text())
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    uid = source["datasources"][0]["uid"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
