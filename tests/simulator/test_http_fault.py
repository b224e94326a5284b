"""``POST /sim/http_fault``: canned answers for one path until cleared (not part of ComfyUI)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from .frames import requests
from .harness import Sim

pytestmark = pytest.mark.asyncio


def probe_prompt() -> dict[str, Any]:
    return copy.deepcopy(requests("success.jsonl", "POST", "/prompt")[0]["request"]["prompt"])


async def fault(sim: Sim, **body: Any) -> tuple[int, Any]:
    return await sim.request("POST", "/sim/http_fault", json=body)


async def raw(sim: Sim, method: str, path: str) -> tuple[int, str, bytes]:
    async with sim.session.request(method, sim.base + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_queue_answers_garbage_while_a_prompt_runs(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    prompt_id = (await sim.submit(probe_prompt(), cid))["prompt_id"]
    status, body = await fault(sim, path="/queue", status=200, body="{garbage")
    assert (status, body) == (200, {"faults": ["/queue"]})
    for method, path in (("GET", "/queue"), ("GET", "/api/queue"), ("POST", "/queue")):
        assert await raw(sim, method, path) == (200, "application/json", b"{garbage")
    assert (await sim.get("/prompt"))["exec_info"]["queue_remaining"] == 1  # others untouched
    await rec.wait_end(prompt_id)  # the WebSocket and the prompt carry on
    await fault(sim, path="/queue", clear=True)
    assert await sim.get("/queue") == {"queue_running": [], "queue_pending": []}


async def test_status_content_type_and_clearing_all(sim: Sim) -> None:
    await fault(sim, path="/history", status=503, body="busy", content_type="text/plain")
    await fault(sim, path="/api/jobs", status=200, body="[]", content_type=None)
    assert await raw(sim, "GET", "/history") == (503, "text/plain", b"busy")
    assert (await raw(sim, "GET", "/history/x"))[0] == 200  # only that exact path
    status, ctype, _ = await raw(sim, "GET", "/api/jobs")  # 0.3.64 has no such route: faulted
    assert status == 200 and ctype != "application/json"
    assert (await raw(sim, "GET", "/api/api/jobs"))[0] == 200
    assert (await raw(sim, "DELETE", "/history"))[0] == 405  # only GET and POST are faulted
    status, body = await fault(sim, clear=True)
    assert (status, body) == (200, {"faults": []})
    assert await sim.get("/history") == {}


async def test_reset_clears_faults_and_sim_paths_stay_reachable(sim: Sim) -> None:
    await fault(sim, path="/prompt", status=500, body="")
    await fault(sim, path="/sim/reset", status=500, body="")  # accepted, never applied
    assert (await raw(sim, "GET", "/prompt"))[0] == 500
    status, body = await sim.request("POST", "/sim/reset")
    assert (status, body) == (200, {"reset": True})
    assert (await sim.get("/prompt"))["exec_info"]["queue_remaining"] == 0


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"path": "queue"},
        {"path": "/queue", "status": "200"},
        {"path": "/queue", "status": 99},
        {"path": "/queue", "body": 5},
        {"path": 5, "clear": True},
    ],
)
async def test_bad_fault_bodies_are_refused(sim: Sim, body: Any) -> None:
    status, answer = await sim.request("POST", "/sim/http_fault", json=body)
    assert status == 400 and isinstance(answer["error"], str)
    assert (await sim.get("/prompt"))["exec_info"]["queue_remaining"] == 0
