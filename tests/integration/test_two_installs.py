"""Two installs on one Redis server, on two database indexes (production on one, staging on
the other, with the same secret key copied over), each with its own database: Redis pub/sub
ignores the index, so only their default key and channel prefix keeps them apart. Neither
hears a single message of the other."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from lockngen import launcher
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.procs import Proc, python
from tests.support.stack import start_daphne, start_simulator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BASE_REDIS = os.environ["REDIS_URL"].rsplit("/", 1)[0]


@dataclass
class Install:
    name: str
    redis_url: str
    prefix: str
    web: str
    ws: str


def derived_prefix(env: dict[str, str]) -> str:
    """The prefix the install's own processes compute (no LOCKNGEN_REDIS_PREFIX set)."""
    code = "from django.conf import settings; print(settings.REDIS_PREFIX)"
    out = subprocess.run(
        python("manage.py", "shell", "-c", code), env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def start_install(name: str, db: int, log_dir, procs: list[Proc]) -> Install:
    env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="lockngen.settings")
    env.pop("LOCKNGEN_REDIS_PREFIX")  # the default, as an install has it
    env.update(LOCKNGEN_REQUIRE_AUTH="false", REDIS_URL=f"{BASE_REDIS}/{db}")
    env["DATABASE_URL"] = f"sqlite:///{log_dir}/{name}.sqlite3"
    env["DJANGO_MEDIA_ROOT"] = str(log_dir / f"{name}-media")
    migrate = Proc(f"migrate-{name}", python("manage.py", "migrate", "-v0"), log_dir, env)
    assert migrate.start().popen.wait(120) == 0, migrate.tail()
    env["COMFYUI_CLIENT_ID"] = f"lockngen-{name}-{os.getpid()}"
    sim, env["COMFYUI_URL"] = start_simulator(log_dir, env, f"sim-{name}")
    web, port = start_daphne(log_dir, env, f"web-{name}")
    monitor = Proc(f"monitor-{name}", launcher.monitor(), log_dir, env)
    procs += [sim, web, monitor.start()]
    monitor.wait_for_log("connected to ComfyUI")
    url = f"127.0.0.1:{port}"
    return Install(name, env["REDIS_URL"], derived_prefix(env), f"http://{url}", f"ws://{url}")


@pytest.fixture(scope="module")
def installs(tmp_path_factory) -> Iterator[list[Install]]:
    log_dir = tmp_path_factory.mktemp("two-installs")
    procs: list[Proc] = []
    made: list[Install] = []
    try:
        made = [
            start_install("prod", 13, log_dir, procs),
            start_install("staging", 14, log_dir, procs),
        ]
        yield made
    finally:
        for proc in procs:
            proc.stop()
        for install in made:  # only the keys of these installs' own prefixes
            client = redis.Redis.from_url(install.redis_url)
            for key in client.scan_iter(match=f"{install.prefix}:*", count=500):
                client.delete(key)


async def test_neither_install_hears_the_other(installs) -> None:
    prod, staging = installs
    assert prod.prefix != staging.prefix  # the same secret key, another Redis database
    async with (
        Watcher(f"{prod.ws}/api/ws/progress") as prod_hose,
        Watcher(f"{staging.ws}/api/ws/progress") as staging_hose,
    ):
        on_prod = create(prod.web, slow_noise(steps=6, seconds=0.05, seed=61))["id"]
        on_staging = create(staging.web, slow_noise(steps=6, seconds=0.05, seed=62))["id"]
        prod_msgs = await prod_hose.until_done(on_prod)
        staging_msgs = await staging_hose.until_done(on_staging)
        # Each generation's whole life went by on its own install...
        assert prod_msgs[-1]["type"] == staging_msgs[-1]["type"] == "generation.completed"
        # ...and the other install's sockets never got one message of it.
        assert prod_hose.of(on_staging) == [], prod_hose.of(on_staging)[:2]
        assert staging_hose.of(on_prod) == [], staging_hose.of(on_prod)[:2]
