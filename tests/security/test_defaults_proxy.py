"""The deployment's nginx config, run for real in front of daphne (when nginx is installed):
WebSocket upgrades pass, bodies are capped before daphne, our own 413 shows below the cap."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.integration.clients import Watcher
from tests.security.test_defaults import child_env
from tests.support.procs import ROOT, Proc, daphne_args, free_port, wait_for_port

pytestmark = [pytest.mark.integration]

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


@dataclass
class Proxied:
    url: str
    ws_url: str
    web_url: str  # daphne itself, as nobody outside may reach it
    web: Proc


@pytest.fixture(scope="module")
def proxied(django_db_setup, tmp_path_factory) -> Iterator[Proxied]:
    if NGINX is None:
        pytest.skip("nginx is not installed")
    log_dir = tmp_path_factory.mktemp("proxy")
    # daphne as the image runs it: trusting X-Forwarded-For (--proxy-headers).
    web_port = free_port()
    args = daphne_args(web_port)
    args.insert(args.index("--ping-interval"), "--proxy-headers")
    web = Proc("daphne", args, log_dir, child_env(LOCKNGEN_REQUIRE_AUTH="false")).start()
    wait_for_port(web_port, proc=web)
    port = free_port()
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    # Only what differs outside compose: addresses, the pid file, the worker count.
    conf = conf.replace("server web:8000;", f"server 127.0.0.1:{web_port};")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {log_dir}/nginx.pid;")
    conf = re.sub(r"worker_processes \w+;", "worker_processes 1;", conf)
    (log_dir / "nginx.conf").write_text(conf)
    args = [NGINX, "-p", str(log_dir), "-c", str(log_dir / "nginx.conf"), "-g", "daemon off;"]
    nginx = Proc("nginx", args, log_dir, child_env()).start()
    try:
        wait_for_port(port, proc=nginx)
        urls = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        yield Proxied(*urls, f"http://127.0.0.1:{web_port}", web)
    finally:
        nginx.stop()
        web.stop()


def test_requests_pass_through(proxied: Proxied, transactional_db) -> None:
    response = requests.get(f"{proxied.url}/api/generations", timeout=10)
    assert response.status_code == 200 and response.json()["results"] == []


def test_a_body_over_the_proxy_limit_never_reaches_daphne(proxied: Proxied) -> None:
    response = requests.post(
        f"{proxied.url}/api/generations", data=b"x" * (4 * 1024 * 1024), timeout=30
    )
    assert response.status_code == 413 and "nginx" in response.text.lower()


def test_a_body_between_the_limits_gets_our_413(proxied: Proxied) -> None:
    body = b'{"prompt": "' + b"y" * (2 * 1024 * 1024 + 100) + b'"}'
    response = requests.post(f"{proxied.url}/api/generations", data=body, timeout=30)
    assert response.status_code == 413 and "body larger than" in response.json()["error"]


def test_the_websocket_upgrade_passes(proxied: Proxied, transactional_db) -> None:
    async def ping() -> list[dict]:
        async with Watcher(f"{proxied.ws_url}/api/ws/progress") as watcher:
            await watcher.send('{"type": "ping"}')
            await watcher.until(lambda msgs: any(m["type"] == "pong" for m in msgs), timeout=10)
            return watcher.messages

    assert any(m["type"] == "pong" for m in asyncio.run(ping()))


def client_seen_by_daphne(proxied: Proxied, url: str, forged: str) -> str:
    """The client address daphne logs for one request with a forged X-Forwarded-For."""
    marker = f"/healthz?probe={forged}"
    requests.get(url + marker, headers={"X-Forwarded-For": forged}, timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in proxied.web.log_path.read_text().splitlines():
            if f'"GET {marker}"' in line:
                return line.split(" ", 1)[0].rsplit(":", 1)[0]
        time.sleep(0.05)
    raise AssertionError(f"daphne never logged {marker}")


def test_a_forged_client_address_does_not_survive_the_proxy(proxied: Proxied) -> None:
    assert client_seen_by_daphne(proxied, proxied.url, "203.0.113.9") == "127.0.0.1"
    # ...which is why daphne must never be reachable without it: alone, it believes anyone.
    assert client_seen_by_daphne(proxied, proxied.web_url, "203.0.113.10") == "203.0.113.10"
