"""Estimates on the real stack: every message carries them, queued ones know when they start,
and what the monitor learned survives its restart."""

from __future__ import annotations

import asyncio

import pytest
import requests

from tests.integration.clients import Watcher, create, slow_noise

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def with_position(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["data"]["queuePosition"] is not None]


async def model_loads(live, count: int) -> list[str]:
    """The monitor's "ETA model of …" log lines (its log is appended to across restarts),
    once there are ``count`` of them."""
    for _ in range(200):
        text = live.monitor.log_path.read_text(errors="replace")
        lines = [line for line in text.splitlines() if "ETA model of" in line]
        if len(lines) >= count and "connected to ComfyUI" in text.split(lines[-1], 1)[1]:
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(live.monitor.tail())


async def burst(live, seeds: list[int]) -> dict[str, list[dict]]:
    """Submit one generation per seed at once; every message of each, to the end."""
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        ids = [create(live.web_url, slow_noise(steps=8, seconds=0.1, seed=s))["id"] for s in seeds]
        for gid in ids:
            await firehose.until_done(gid)
    return {gid: firehose.of(gid) for gid in ids}


async def test_messages_carry_estimates_and_a_restart_keeps_what_was_learned(live) -> None:
    await burst(live, [1])  # learn this graph once
    runs = list((await burst(live, [2, 3, 4])).values())
    for messages in runs:
        assert all({"etaSeconds", "startsInSeconds"} <= set(m["data"]) for m in messages)
        running = [m["data"] for m in messages if m["data"]["status"] == "running"]
        assert running and all(d["startsInSeconds"] is None for d in running)
        assert any(d["etaSeconds"] is not None and 0 < d["etaSeconds"] < 3 for d in running)
        assert messages[-1]["data"]["etaSeconds"] is None  # finished: nothing left to estimate
    waits = [with_position(messages)[0]["data"] for messages in runs[1:]]
    assert all(w["startsInSeconds"] is not None and w["startsInSeconds"] > 0 for w in waits)
    assert waits[1]["startsInSeconds"] > waits[0]["startsInSeconds"]
    assert waits[0]["etaSeconds"] > waits[0]["startsInSeconds"]

    live.monitor.stop()
    live.start_monitor()
    loaded = await model_loads(live, 2)
    assert loaded[0].endswith(": 0 learned node keys") and not loaded[1].endswith(
        ": 0 learned node keys"
    )
    again = list((await burst(live, [5, 6])).values())
    queued = with_position(again[1])[0]["data"]
    assert queued["startsInSeconds"] is not None  # estimated at once, from the loaded model


async def test_the_generation_json_has_the_estimates(live) -> None:
    gid = create(live.web_url, slow_noise(steps=8, seconds=0.1, seed=9))["id"]
    detail = requests.get(f"{live.web_url}/api/generations/{gid}", timeout=5).json()
    assert "etaSeconds" in detail and "startsInSeconds" in detail
    async with Watcher(f"{live.ws_url}/api/ws/progress?generationId={gid}") as watcher:
        await watcher.until_done(gid)
    detail = requests.get(f"{live.web_url}/api/generations/{gid}", timeout=5).json()
    assert detail["etaSeconds"] is None and detail["startsInSeconds"] is None
