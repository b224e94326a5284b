"""Scale-out: several daphne processes on one Redis, several ComfyUI backends."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import requests

from generations.models import Generation
from lockngen import launcher
from tests.integration.clients import Watcher, assert_gapless, create, kinds, slow_noise
from tests.support.procs import Proc
from tests.support.stack import start_daphne, start_simulator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def farm(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict]:
    """Two simulated backends, a monitor for each, two daphne processes, one Redis."""
    log_dir = tmp_path_factory.mktemp("farm")
    env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="lockngen.settings")
    env["LOCKNGEN_REQUIRE_AUTH"] = "false"
    procs: list[Proc] = []
    try:
        sims = []
        for name in ("sim-a", "sim-b"):
            proc, url = start_simulator(log_dir, env, name)
            procs.append(proc)
            sims.append(url)
        env["COMFYUI_URLS"] = ",".join(sims)
        webs = []
        for name in ("web-1", "web-2"):
            proc, port = start_daphne(log_dir, env, name)
            procs.append(proc)
            webs.append(port)
        for i, url in enumerate(sims):
            args = launcher.monitor("--url", url)
            monitor = Proc(f"monitor-{i}", args, log_dir, env).start()
            procs.append(monitor)
            monitor.wait_for_log("connected to ComfyUI")
        yield {"sims": sims, "webs": webs, "procs": procs}
    finally:
        for proc in procs:
            proc.stop()


async def test_two_web_processes_deliver_every_message_in_order(farm, transactional_db) -> None:
    one, two = (f"ws://127.0.0.1:{port}/api/ws/progress" for port in farm["webs"])
    async with Watcher(one) as first, Watcher(two) as second:
        gid = create(f"http://127.0.0.1:{farm['webs'][0]}", slow_noise(steps=8, seconds=0.1))["id"]
        a = await first.until_done(gid)
        b = await second.until_done(gid)
    assert a == b
    assert a[0]["seq"] == 1 and kinds(a)[-1] == "completed"
    assert_gapless(a)


async def test_generations_spread_over_two_backends_and_all_complete(farm, transactional_db):
    web = f"http://127.0.0.1:{farm['webs'][1]}"
    async with Watcher(f"ws://127.0.0.1:{farm['webs'][0]}/api/ws/progress") as firehose:
        ids = [create(web, slow_noise(steps=6, seconds=0.1, seed=80 + i))["id"] for i in range(4)]
        for gid in ids:
            assert kinds(await firehose.until_done(gid))[-1] == "completed"
    rows = Generation.objects.filter(id__in=ids).values_list("comfyui_url", flat=True)
    backends = set(await asyncio.to_thread(list, rows))
    assert backends == set(farm["sims"])
    for gid in ids:
        body = requests.get(f"{web}/api/generations/{gid}", timeout=5).json()
        assert body["status"] == "completed" and body["images"]
