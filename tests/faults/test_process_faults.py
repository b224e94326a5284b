"""Faults 1, 2 and 4: the monitor killed, ComfyUI's sockets dropped, ComfyUI restarted (each
against every server the simulator plays), and a client whose network drops every 200 ms.
Each computes and records its figures."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import requests

from generations.status import TERMINAL_STATUSES
from tests.faults.support import (
    TERMINAL,
    ResumingClient,
    each_server,
    final_seq,
    record_figures,
    tally,
    wait_for_status,
)
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.servers import restart_simulator, sim_variant

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def assert_exactly_once(figures, messages) -> None:
    assert figures.lost == 0 and figures.duplicated == 0, (figures, [m["seq"] for m in messages])
    assert figures.out_of_order == 0 and figures.delivered == figures.expected, figures


@each_server
async def test_monitor_sigkill_mid_generation(rig) -> None:
    gid = create(rig.web_url, slow_noise(steps=20, seconds=0.15, seed=101))["id"]
    url = f"{rig.ws_url}/api/ws/progress?generationId={gid}"
    async with Watcher(url) as one, Watcher(f"{rig.ws_url}/api/ws/progress") as firehose:
        await one.until_step(gid, 4)
        rig.monitor.kill()  # SIGKILL: no cleanup at all
        killed_at = time.monotonic()
        await asyncio.sleep(1.0)
        rig.start_monitor()
        down = time.monotonic() - killed_at
        msgs = await one.until_done(gid, timeout=40)
        await firehose.until_done(gid, timeout=10)
    body = final_seq(rig.web_url, gid)
    figures = tally(msgs, body["seq"], gid)
    hose = tally(firehose.of(gid), body["seq"], gid)
    record_figures(
        f"monitor SIGKILL + restart on {sim_variant(rig)}",
        figures,
        firehose=hose.as_json(),
        monitorDownSeconds=round(down, 1),
        closeCode=one.close_code,
    )
    assert_exactly_once(figures, msgs)
    assert_exactly_once(hose, firehose.of(gid))
    assert one.close_code is None  # the client stayed connected throughout
    assert msgs[-1]["type"] == "generation.completed" and msgs[-1]["data"]["images"]
    assert body["status"] == "completed" and body["images"] == msgs[-1]["data"]["images"]
    image = requests.get(rig.web_url + body["images"][0], timeout=5)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"


@each_server
async def test_simulator_drops_every_socket_mid_generation(rig) -> None:
    gid = create(rig.web_url, slow_noise(steps=20, seconds=0.15, seed=102))["id"]
    url = f"{rig.ws_url}/api/ws/progress?generationId={gid}"
    async with Watcher(url) as one:
        await one.until_step(gid, 4)
        dropped = requests.post(f"{rig.sim_url}/sim/drop_sockets", timeout=5).json()["dropped"]
        msgs = await one.until_done(gid, timeout=40)
    body = final_seq(rig.web_url, gid)
    figures = tally(msgs, body["seq"], gid)
    record_figures(
        f"ComfyUI drops every socket on {sim_variant(rig)}", figures, socketsDropped=dropped
    )
    assert dropped >= 1  # the monitor's socket at least
    assert_exactly_once(figures, msgs)
    assert msgs[-1]["type"] == "generation.completed" and msgs[-1]["data"]["images"]
    assert body["status"] == "completed"


# The simulator's restart loses its queue and history, like a real ComfyUI restart. The
# generation was running; it must end (failed with a clear error, or completed) soon after
# the monitor is connected again, not stay "running".
SETTLE_SECONDS = 20.0


@each_server
async def test_simulator_restarted_mid_generation_ends_the_generation(rig) -> None:
    gid = create(rig.web_url, slow_noise(steps=40, seconds=0.15, seed=103))["id"]
    url = f"{rig.ws_url}/api/ws/progress?generationId={gid}"
    async with Watcher(url) as one:
        await one.until_step(gid, 4)
        assert rig.sim.stop(signal.SIGTERM) is not None
        await asyncio.sleep(0.5)
        await asyncio.to_thread(restart_simulator, rig)
        restarted = time.monotonic()
        settled = await wait_for_status(rig.web_url, gid, set(TERMINAL_STATUSES), SETTLE_SECONDS)
        took = time.monotonic() - restarted
        ended = [m for m in one.of(gid) if m["type"] in TERMINAL]
        if settled is not None:
            msgs = await one.until_done(gid, timeout=10)
        else:
            msgs = one.of(gid)
    body = final_seq(rig.web_url, gid)
    figures = tally(msgs, body["seq"], gid)
    record_figures(
        f"ComfyUI restarted (queue lost) on {sim_variant(rig)}",
        figures,
        apiStatus=body["status"],
        error=body["error"],
        settledSeconds=round(took, 1) if settled else None,
    )
    assert settled is not None, (
        f"still {body['status']} {SETTLE_SECONDS:.0f}s after ComfyUI came back "
        f"(terminal messages seen: {ended})"
    )
    assert_exactly_once(figures, msgs)
    last = msgs[-1]
    assert last["type"] == f"generation.{body['status']}"  # the API and the socket agree
    assert last["seq"] == body["seq"]
    if body["status"] == "failed":
        assert "ComfyUI" in body["error"] and last["data"]["error"] == body["error"]
    else:
        assert body["status"] == "completed" and body["images"]


async def test_client_reconnecting_every_200ms_gets_every_message_once(rig) -> None:
    gid = create(rig.web_url, slow_noise(steps=30, seconds=0.15, seed=104))["id"]
    client = ResumingClient(rig.ws_url, [gid], hold=0.2)
    await client.run(timeout=40)
    body = final_seq(rig.web_url, gid)
    figures = tally(client.messages, body["seq"], gid)
    record_figures(
        "client reconnects every 200 ms (afterSeq in URL)",
        figures,
        connections=client.connections,
        errors=len(client.errors),
    )
    assert client.connections >= 10, client.connections
    assert not client.errors, client.errors[:5]
    assert_exactly_once(figures, client.messages)
    assert client.of(gid)[-1]["type"] == "generation.completed"
    # Every connection after the first resumed: no snapshot may stand in for messages.
    assert all(m["type"] != "generation.snapshot" for m in client.messages[1:])


async def test_firehose_client_resuming_two_generations_every_200ms(rig) -> None:
    gids = [
        create(rig.web_url, slow_noise(steps=25, seconds=0.12, seed=105 + i))["id"]
        for i in range(2)
    ]
    # 100 ms between the open and the resume frames: one round trip on a long network path.
    client = ResumingClient(rig.ws_url, gids, hold=0.2, firehose=True, resume_delay=0.1)
    await client.run(timeout=40)
    results = {}
    for gid in gids:
        body = final_seq(rig.web_url, gid)
        results[gid] = tally(client.messages, body["seq"], gid)
    worst = max(results.values(), key=lambda f: f.lost + f.duplicated + f.out_of_order)
    record_figures(
        "firehose client resumes 2 generations every 200 ms (resume frames)",
        worst,
        connections=client.connections,
        perGeneration=[f.as_json() for f in results.values()],
    )
    assert not client.errors, client.errors[:5]
    for figures in results.values():
        # Exactly once. Order: a live message can beat the resume frame to the socket; the
        # replay then fills in the earlier ones after it (the README says: apply by seq).
        assert figures.lost == 0 and figures.duplicated == 0, figures
        assert figures.delivered == figures.expected, figures
        assert figures.out_of_order <= client.connections, figures
        assert figures.terminal == "generation.completed"
