"""Safe defaults on real processes: DEBUG off, no settings on any page, no start with the
development key, and a random ComfyUI clientId that the web side and the monitor share."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from generations.install import CLIENT_ID_SETTING
from generations.models import InstallSetting
from lockngen import launcher
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.procs import ROOT, Proc, daphne_args, free_port, python
from tests.support.stack import start_daphne, start_simulator

pytestmark = [pytest.mark.integration]

# What a debug page showed an anonymous visitor; none of it may appear on any page now.
LEAKS = ("REDIS_URL", "COMFYUI", "DATABASES", "SECRET", "Traceback", "DEBUG = True", "lockngen/")


def child_env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="lockngen.settings")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture(scope="module")
def production_daphne(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """daphne as deployed: no DJANGO_DEBUG in its environment at all."""
    proc, port = start_daphne(tmp_path_factory.mktemp("defaults"), child_env(DJANGO_DEBUG=None))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def assert_plain(response: requests.Response) -> None:
    assert len(response.content) < 1000, response.text[:300]
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[:300])


@pytest.mark.parametrize("host", ["evil.example.com", "127.0.0.1.nip.io:8000", "x" * 300])
def test_bad_host_is_a_plain_400(production_daphne: str, host: str) -> None:
    response = requests.get(f"{production_daphne}/api/generations", headers={"Host": host})
    assert response.status_code == 400
    assert_plain(response)


@pytest.mark.parametrize("path", ["/nope", "/api/generations/not-a-uuid", "/static/missing.js"])
def test_unknown_pages_are_plain_404s(production_daphne: str, path: str) -> None:
    response = requests.get(production_daphne + path, timeout=10)
    assert response.status_code == 404
    assert_plain(response)


def test_the_running_daphne_has_debug_off() -> None:
    # The test settings are the app's own; DEBUG is off there as in production.
    assert settings.DEBUG is False


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python("manage.py", *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "key",
    [None, "", "dev-only-insecure-lockngen-key-change-me", "change-me-to-a-long-random-string"],
)
def test_no_start_with_the_development_key(key: str | None, tmp_path: Path) -> None:
    env = child_env(DJANGO_DEBUG=None, DJANGO_SECRET_KEY=key)
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "ImproperlyConfigured" in result.stderr
    # daphne itself: exits at once instead of listening.
    port = free_port()
    daphne = Proc("daphne-dev-key", daphne_args(port), tmp_path, env).start()
    assert daphne.popen.wait(60) != 0
    assert "DJANGO_SECRET_KEY" in daphne.log_path.read_text()


def test_debug_on_explicitly_still_runs_with_the_development_key() -> None:
    env = child_env(DJANGO_DEBUG="true", DJANGO_SECRET_KEY=None)
    assert run_manage(env, "check").returncode == 0


def client_id_in(env: dict[str, str]) -> str:
    code = "from generations.install import comfyui_client_id as c; print(c())"
    result = run_manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after shell's own banner


def test_client_id_is_random_per_install_and_kept(transactional_db) -> None:
    InstallSetting.objects.filter(name=CLIENT_ID_SETTING).delete()
    env = child_env(COMFYUI_CLIENT_ID=None)
    first = client_id_in(env)
    assert first.startswith("lockngen-") and len(first) >= 9 + 32
    assert client_id_in(env) == first  # kept: every process of the install agrees
    assert InstallSetting.objects.get(name=CLIENT_ID_SETTING).value == first
    # Not derived from the secret key: another install with the same key gets another one.
    InstallSetting.objects.filter(name=CLIENT_ID_SETTING).delete()
    assert client_id_in(env) != first
    assert client_id_in(child_env(COMFYUI_CLIENT_ID="my-own-id")) == "my-own-id"


def test_web_and_monitor_agree_on_the_random_client_id(transactional_db, tmp_path: Path) -> None:
    """No COMFYUI_CLIENT_ID anywhere: the monitor hears the prompts the web side submits."""
    InstallSetting.objects.filter(name=CLIENT_ID_SETTING).delete()
    env = child_env(COMFYUI_CLIENT_ID=None, LOCKNGEN_REQUIRE_AUTH="false")
    sim, sim_url = start_simulator(tmp_path, env)
    env["COMFYUI_URL"] = sim_url
    web, port = start_daphne(tmp_path, env)
    monitor = Proc("monitor", launcher.monitor(), tmp_path, env).start()
    try:
        monitor.wait_for_log("connected to ComfyUI")
        chosen = InstallSetting.objects.get(name=CLIENT_ID_SETTING).value
        assert f"as clientId {chosen}" in monitor.log_path.read_text()
        row = create(f"http://127.0.0.1:{port}", slow_noise(steps=3, seconds=0.05))

        async def watch() -> list[dict]:
            async with Watcher(
                f"ws://127.0.0.1:{port}/api/ws/progress?generationId={row['id']}"
            ) as w:
                return await w.until_done(row["id"])

        assert asyncio.run(watch())[-1]["type"] == "generation.completed"
    finally:
        for proc in (monitor, web, sim):
            proc.stop()
