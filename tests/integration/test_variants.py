"""The whole pipeline against every server the simulator plays: 0.3.64, the 0.12 fork, and
upstream with the jobs API. Each variant gets a stack of its own (simulator, daphne,
monitor: ``stack`` with an indirect parameter), since what the monitor learns of a server it
learns on connect."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
import requests

from generations.models import Generation
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.procs import python
from tests.support.stack import VARIANTS, Stack

pytestmark = [
    pytest.mark.integration,
    # Each test runs on every server; one stack per server, shared by the module's tests.
    pytest.mark.parametrize("stack", list(VARIANTS), indirect=True, scope="module"),
]

JOBS_API = {"0.3.64": "no", "fork-0.12": "yes", "modern": "yes"}


def variant(stack: Stack) -> str:
    return stack.variant


async def watch_one(stack: Stack, workflow: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    gid = create(stack.web_url, workflow)["id"]
    async with Watcher(f"{stack.ws_url}/api/ws/progress?generationId={gid}") as watcher:
        return gid, await watcher.until_done(gid, timeout=40)


@pytest.mark.asyncio
async def test_a_generation_completes_and_no_server_path_leaves_the_monitor(live: Stack) -> None:
    gid, msgs = await watch_one(live, slow_noise(steps=6, seconds=0.05))
    assert msgs[-1]["type"] == "generation.completed", live.monitor.tail()
    body = requests.get(f"{live.web_url}/api/generations/{gid}", timeout=5).json()
    assert body["status"] == "completed" and len(body["images"]) == 1
    image = requests.get(live.web_url + body["images"][0], timeout=5)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    row = await Generation.objects.aget(id=gid)
    server_dir = str(live.log_dir / "simulator-out")
    everything = json.dumps(
        [msgs, body, {f.name: str(getattr(row, f.attname)) for f in row._meta.fields}]
    )
    info_lines = [line for line in live.monitor.tail(400).splitlines() if " INFO " in line]
    for text in (everything, "\n".join(info_lines)):
        assert "abs_path" not in text and server_dir not in text


def test_the_monitor_says_what_it_talks_to(live: Stack) -> None:
    expected = f"version {VARIANTS[variant(live)]}, jobs API {JOBS_API[variant(live)]}"
    assert expected in live.monitor.tail(400)
    deadline = time.monotonic() + 10
    while True:  # the preview format is published once ComfyUI answered the hello
        health = subprocess.run(
            python("manage.py", "monitor_health", "--url", live.sim_url),
            env=live.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if "previews type 4" in health.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert health.returncode == 0, health.stderr
    assert f"ComfyUI version {VARIANTS[variant(live)]}, jobs API {JOBS_API[variant(live)]}" in (
        health.stdout
    )
    assert "previews type 4 (with prompt id)" in health.stdout


def test_an_unknown_node_is_our_400_naming_it(live: Stack) -> None:
    workflow = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    answer = requests.post(
        f"{live.web_url}/api/generations", json={"workflow": workflow}, timeout=10
    )
    assert answer.status_code == 400
    body = answer.json()
    assert "NoSuchNode" in body["error"] and body["type"]
    if variant(live) != "0.3.64":  # newer servers: missing_node_type, the node in extra_info
        assert body["type"] == "missing_node_type"
        assert body["nodeErrors"]["1"]["classType"] == "NoSuchNode"
    assert "/srv/" not in answer.text and "traceback" not in answer.text.lower()


@pytest.mark.asyncio
async def test_a_cancel_ends_cancelled_on_every_server(live: Stack) -> None:
    gid = create(live.web_url, slow_noise(steps=40, seconds=0.1))["id"]
    async with Watcher(f"{live.ws_url}/api/ws/progress?generationId={gid}") as watcher:
        await watcher.until_step(gid, 2)
        cancel = requests.post(f"{live.web_url}/api/generations/{gid}/cancel", timeout=10)
        assert cancel.status_code == 202
        msgs = await watcher.until_done(gid, timeout=30)
    assert msgs[-1]["type"] == "generation.cancelled", live.monitor.tail()
    sim_log = live.sim.tail(400)
    if variant(live) == "modern":  # the race-free jobs API cancel
        assert "/api/jobs/" in sim_log and '/cancel HTTP/1.1" 200' in sim_log
    else:
        assert '"POST /interrupt HTTP/1.1" 200' in sim_log


@pytest.mark.asyncio
async def test_loading_activity_reaches_the_client_on_newer_servers(live: Stack) -> None:
    _, msgs = await watch_one(live, slow_noise(steps=6, seconds=0.05))
    activities = [m["data"]["activity"] for m in msgs if m["data"].get("activity")]
    assert all("activity" in m["data"] for m in msgs)
    if variant(live) == "modern":
        assert activities == ["loading"]
        first_step = next(i for i, m in enumerate(msgs) if m["data"]["step"])
        loading = next(i for i, m in enumerate(msgs) if m["data"]["activity"])
        assert loading < first_step and msgs[loading]["data"]["step"] is None
    else:
        assert activities == []
    steps = [m["data"]["step"] for m in msgs if m["data"]["step"]]
    assert steps[-1] == 6 and steps == sorted(steps)
