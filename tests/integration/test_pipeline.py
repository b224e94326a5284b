"""ComfyUI simulator → monitor → Redis channel layer → daphne → real WebSocket clients."""

from __future__ import annotations

import asyncio

import pytest
import requests

from tests.integration.clients import Watcher, assert_gapless, create, kinds, slow_noise

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def steps_seen(messages: list[dict]) -> list[int]:
    found: list[int] = []
    for msg in messages:
        step = msg["data"]["step"]
        if step and (not found or found[-1] != step):
            found.append(step)
    return found


async def test_watchers_of_one_generation_and_the_firehose_agree(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gen = create(live.web_url, slow_noise(steps=10, seconds=0.15))
        gid = gen["id"]
        url = f"{live.ws_url}/api/ws/progress?generationId={gid}"
        async with Watcher(url) as one, Watcher(url) as two:
            streams = [await w.until_done(gid) for w in (firehose, one, two)]
    full = streams[0]
    assert kinds(full)[0] == "queued" and kinds(full)[1] == "started"
    assert kinds(full)[-1] == "completed"
    assert full[0]["seq"] == 1
    assert steps_seen(full) == list(range(1, 11))
    for stream in streams:
        assert_gapless(stream)
        assert stream[0]["type"] in ("generation.snapshot", "generation.queued")
    # Everything after the late joiners' snapshots is the very same sequence of messages.
    start = max(s[0]["seq"] for s in streams)
    live_parts = [
        [m for m in s if m["seq"] > start and m["type"] != "generation.snapshot"] for s in streams
    ]
    assert live_parts[0] == live_parts[1] == live_parts[2]
    final = full[-1]["data"]
    assert final["progress"] == 100 and final["images"]
    image = requests.get(live.web_url + final["images"][0], timeout=5)
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    detail = requests.get(f"{live.web_url}/api/generations/{gid}", timeout=5).json()
    assert detail["status"] == "completed" and detail["images"] == final["images"]


async def test_late_joiner_gets_the_snapshot_first_then_live(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=12, seconds=0.15))["id"]
        await firehose.until_step(gid, 4)
        async with Watcher(f"{live.ws_url}/api/ws/progress?generationId={gid}") as late:
            msgs = await late.until_done(gid)
    snapshot = msgs[0]
    assert snapshot["type"] == "generation.snapshot"
    assert snapshot["data"]["status"] == "running" and snapshot["data"]["step"] >= 4
    assert snapshot["data"]["progress"] > 0
    assert_gapless(msgs)
    assert all(m["type"] != "generation.snapshot" for m in msgs[1:])
    assert msgs[-1]["type"] == "generation.completed"


async def test_preview_is_served_with_its_content_type(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=6, seconds=0.3))["id"]
        await firehose.until(
            lambda ms: any(m["data"]["previewUrl"] for m in ms if m.get("generationId") == gid)
        )
        url = next(m["data"]["previewUrl"] for m in firehose.of(gid) if m["data"]["previewUrl"])
        response = requests.get(live.web_url + url, timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8"
        msgs = await firehose.until_done(gid)
    urls = {m["data"]["previewUrl"] for m in msgs if m["data"]["previewUrl"]}
    assert len(urls) >= 2  # it changes as new previews arrive


async def test_execution_error_ends_failed_with_the_message(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=3, seconds=0.05, fail_at=2))["id"]
        msgs = await firehose.until_done(gid)
    assert kinds(msgs)[-1] == "failed"
    error = msgs[-1]["data"]["error"]
    assert "FailAt" in error and "deliberate failure" in error
    assert (
        requests.get(f"{live.web_url}/api/generations/{gid}", timeout=5).json()["status"]
        == "failed"
    )


async def test_interrupt_ends_cancelled(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gen = create(live.web_url, slow_noise(steps=20, seconds=0.1, seed=7))
        gid = gen["id"]
        await firehose.until_step(gid, 2)
        requests.post(f"{live.sim_url}/interrupt", json={}, timeout=5)
        msgs = await firehose.until_done(gid)
    assert kinds(msgs)[-1] == "cancelled"


async def test_cached_rerun_completes(live) -> None:
    workflow = slow_noise(steps=3, seconds=0.05, seed=99)
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        first = create(live.web_url, workflow)["id"]
        await firehose.until_done(first)
        second = create(live.web_url, workflow)["id"]
        msgs = await firehose.until_done(second)
    assert kinds(msgs)[-1] == "completed"
    assert not steps_seen(msgs)  # nothing ran: every node came from the cache
    assert msgs[-1]["data"]["images"]


async def test_monitor_killed_and_restarted_mid_generation_still_completes(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=16, seconds=0.2, seed=11))["id"]
        await firehose.until_step(gid, 3)
        live.monitor.kill()
        await asyncio.sleep(1.0)
        live.start_monitor()
        msgs = await firehose.until_done(gid, timeout=40)
    assert kinds(msgs)[-1] == "completed"
    assert_gapless(msgs)
    progress = [m["data"]["progress"] for m in msgs]
    assert progress == sorted(progress)
    assert msgs[-1]["data"]["images"]
    image = requests.get(live.web_url + msgs[-1]["data"]["images"][0], timeout=5)
    assert image.status_code == 200


async def test_monitor_restarted_after_the_end_reconciles_from_history(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=6, seconds=0.2, seed=12))["id"]
        await firehose.until_step(gid, 2)
        live.monitor.kill()
        await asyncio.sleep(2.0)  # the prompt finishes while nobody listens
        live.start_monitor()
        msgs = await firehose.until_done(gid, timeout=40)
    assert kinds(msgs)[-1] == "completed" and msgs[-1]["data"]["images"]
    assert_gapless(msgs)


async def test_simulator_dropping_every_socket_mid_generation(live) -> None:
    async with Watcher(f"{live.ws_url}/api/ws/progress") as firehose:
        gid = create(live.web_url, slow_noise(steps=16, seconds=0.15, seed=13))["id"]
        await firehose.until_step(gid, 3)
        requests.post(f"{live.sim_url}/sim/drop_sockets", timeout=5)
        msgs = await firehose.until_done(gid, timeout=40)
    assert kinds(msgs)[-1] == "completed" and msgs[-1]["data"]["images"]
    assert_gapless(msgs)


async def test_monitor_stops_cleanly_on_sigterm(live) -> None:
    import signal

    code = live.monitor.stop(signal.SIGTERM, timeout=10)
    assert code == 0, live.monitor.tail()
    live.start_monitor()


async def test_health_checks_answer(live) -> None:
    import subprocess
    import sys

    assert requests.get(f"{live.web_url}/healthz", timeout=5).json() == {"status": "ok"}
    await asyncio.sleep(0.5)  # the monitor beats at its first flush
    args = [sys.executable, "manage.py", "monitor_health", "--url", live.sim_url]
    done = subprocess.run(args, env=live.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    other = subprocess.run(
        [*args[:-1], "http://127.0.0.1:1"], env=live.env, capture_output=True, timeout=30
    )
    assert other.returncode != 0
