"""Behaviour beyond the recorded scenarios: txt2img, caching, routing corners, /sim, jobs."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from comfyui_sim import SimulatorConfig, create_app
from comfyui_sim.app import CONFIG

from .frames import requests
from .harness import Sim, StartSim

pytestmark = pytest.mark.asyncio


def txt2img(steps: int = 4, ckpt: str = "sim-v1.safetensors") -> dict[str, Any]:
    """The classic default workflow in API format."""
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 5,
                "steps": steps,
                "cfg": 8,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 256, "height": 192, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
        },
    }


def probe_prompt() -> dict[str, Any]:
    return copy.deepcopy(requests("success.jsonl", "POST", "/prompt")[0]["request"]["prompt"])


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if m["type"] == kind]


async def test_txt2img_with_sampler_previews(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    answer = await sim.submit(txt2img(steps=4), cid)
    await rec.wait_end(answer["prompt_id"])
    messages = rec.messages()
    executing = [d["node"] for d in of_type(messages, "executing") if d["node"]]
    assert executing == ["4", "6", "7", "5", "3", "8", "9"]  # dependencies first
    assert [(d["node"], d["value"]) for d in of_type(messages, "progress")] == [
        ("3", v) for v in range(1, 5)
    ]
    previews = [f for f in rec.frames if isinstance(f, bytes) and f[:4] == b"\0\0\0\4"]
    assert len(previews) == 4 and all(b"image/jpeg" in p[:300] for p in previews)
    image = of_type(messages, "executed")[0]["output"]["images"][0]
    assert image == {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}
    status, data = await sim.request(
        "GET", "/view", params={"filename": "ComfyUI_00001_.png [output]"}
    )
    assert status == 200 and data[:4] == b"\x89PNG"


async def test_preview_method_none_per_prompt(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    answer = await sim.submit(txt2img(steps=3), cid, extra_data={"preview_method": "none"})
    await rec.wait_end(answer["prompt_id"])
    assert not [f for f in rec.frames if isinstance(f, bytes)]
    assert len(of_type(rec.messages(), "progress")) == 3


async def test_unknown_checkpoint_is_rejected(sim: Sim) -> None:
    status, body = await sim.request("POST", "/prompt", json={"prompt": txt2img(ckpt="nope.ckpt")})
    assert status == 400
    error = body["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == "ckpt_name: 'nope.ckpt' not in ['sim-v1.safetensors']"


async def test_partial_cache_reuses_unchanged_nodes(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    first = await sim.submit(probe_prompt(), cid)
    await rec.wait_end(first["prompt_id"])
    changed = probe_prompt()
    changed["2"]["inputs"]["filename_prefix"] = "other"
    second = await sim.submit(changed, cid)
    await rec.wait_end(second["prompt_id"])
    later = [m for m in rec.messages() if m["data"].get("prompt_id") == second["prompt_id"]]
    assert of_type(later, "execution_cached")[0]["nodes"] == ["1"]
    assert [d["node"] for d in of_type(later, "executing")] == ["2", None]
    assert not of_type(later, "progress")
    assert of_type(later, "executed")[0]["output"]["images"][0]["filename"] == "other_00001_.png"


async def test_same_client_id_replaces_socket_in_routing(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    old = await sim.connect(cid, name="old")
    new = await sim.connect(cid, name="new")
    answer = await sim.submit(probe_prompt(), cid)
    await new.wait_end(answer["prompt_id"])
    assert not old.closed  # replaced in the routing table, not closed
    # not even broadcasts: only sockets in the routing table receive anything
    assert [m["type"] for m in old.messages()] == ["status", "feature_flags"]
    # ComfyUI quirk: when the replaced socket closes, it takes the sid with it.
    await old.close()
    again = await sim.submit({**probe_prompt(), "1": _reseeded(7)}, cid)
    await sim.wait_done(again["prompt_id"])
    assert not [m for m in new.messages() if m["data"].get("prompt_id") == again["prompt_id"]]


def _reseeded(seed: int) -> dict[str, Any]:
    node = probe_prompt()["1"]
    node["inputs"]["seed"] = seed
    return node


async def test_drop_sockets_keeps_the_prompt_running(sim: Sim) -> None:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    answer = await sim.submit(probe_prompt(), cid)
    await rec.wait_progress(2)
    status, body = await sim.request("POST", "/sim/drop_sockets")
    assert status == 200 and body == {"dropped": 1}
    await asyncio.wait_for(rec._task, 5)
    assert rec.ws.close_code != 1000  # no orderly close frame
    history = await sim.wait_done(answer["prompt_id"])
    assert history[answer["prompt_id"]]["status"]["status_str"] == "success"
    timeline = await sim.get(f"/sim/timeline?prompt_id={answer['prompt_id']}")
    assert [e["value"] for e in timeline] == list(range(1, 9))
    assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(timeline))
    assert set(timeline[0]) == {"node", "value", "max", "t"}


async def test_reset_forgets_history_cache_and_queue(sim: Sim) -> None:
    first = await sim.submit(probe_prompt())
    await sim.wait_done(first["prompt_id"])
    slow = probe_prompt()
    slow["1"]["inputs"]["seed"] = 99
    running = await sim.submit(slow)
    pending = await sim.submit(txt2img())
    status, _ = await sim.request("POST", "/sim/reset")
    assert status == 200
    assert await sim.get("/history") == {}
    assert await sim.get("/queue") == {"queue_running": [], "queue_pending": []}
    assert await sim.get(f"/sim/timeline?prompt_id={running['prompt_id']}") == []
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    again = await sim.submit(probe_prompt(), cid)
    await rec.wait_end(again["prompt_id"])
    assert of_type(rec.messages(), "execution_cached")[0]["nodes"] == []
    assert pending["prompt_id"] not in await sim.get("/history")


async def test_interrupt_body_variants(sim: Sim) -> None:
    for kwargs in ({}, {"data": "garbage"}, {"json": {"prompt_id": "not-running"}}, {"json": [1]}):
        status, _ = await sim.request("POST", "/interrupt", **kwargs)
        assert status == 200
    # a stale global interrupt does not hit the next prompt
    answer = await sim.submit(probe_prompt())
    history = await sim.wait_done(answer["prompt_id"])
    assert history[answer["prompt_id"]]["status"]["status_str"] == "success"


async def test_history_post_and_paging(sim: Sim) -> None:
    ids = []
    for seed in (1, 2, 3):
        prompt = probe_prompt()
        prompt["1"]["inputs"].update(seed=seed, steps=1)
        ids.append((await sim.submit(prompt))["prompt_id"])
    await sim.wait_done(*ids)
    assert list(await sim.get("/history?max_items=2")) == ids[1:]
    assert list(await sim.get("/api/history?max_items=1&offset=0")) == ids[:1]
    await sim.request("POST", "/history", json={"delete": [ids[0]]})
    assert list(await sim.get("/history")) == ids[1:]
    await sim.request("POST", "/api/history", json={"clear": True})
    assert await sim.get("/history") == {}


async def test_jobs_api(start_sim: StartSim) -> None:
    sim = await start_sim(time_scale=0.3, variant="modern")  # the only one with cancel
    done = await sim.submit({**probe_prompt(), "1": _reseeded(1) | {}})
    await sim.wait_done(done["prompt_id"])
    running = await sim.submit({**probe_prompt(), "1": _reseeded(2)})
    pending = await sim.submit({**probe_prompt(), "1": _reseeded(3)})
    job = await sim.get(f"/api/jobs/{pending['prompt_id']}")
    assert job["status"] == "pending" and job["workflow"]["prompt"]["1"]["inputs"]["seed"] == 3
    assert (await sim.get(f"/api/jobs/{running['prompt_id']}"))["status"] == "in_progress"
    status, body = await sim.request("POST", f"/api/jobs/{pending['prompt_id']}/cancel")
    assert body == {"cancelled": True}
    status, body = await sim.request("POST", f"/api/jobs/{running['prompt_id']}/cancel")
    assert body == {"cancelled": True}
    await sim.wait_done(running["prompt_id"])
    assert (await sim.get(f"/api/jobs/{running['prompt_id']}"))["status"] == "cancelled"
    status, body = await sim.request("GET", f"/api/jobs/{pending['prompt_id']}")
    assert status == 404 and body == {"error": "Job not found"}
    completed = await sim.get(f"/api/jobs/{done['prompt_id']}")
    assert completed["status"] == "completed" and completed["outputs_count"] == 1
    assert completed["preview_output"]["nodeId"] == "2"
    listing = await sim.get("/api/jobs?status=completed,cancelled&sort_order=asc")
    assert [j["id"] for j in listing["jobs"]] == [done["prompt_id"], running["prompt_id"]]
    status, body = await sim.request("POST", "/api/jobs/cancel", json={"job_ids": ["x"]})
    assert status == 400 and body["invalid_ids"] == ["x"]


async def test_api_prefixed_websocket_and_no_replay(sim: Sim) -> None:
    async with sim.session.ws_connect(f"{sim.base}/api/ws?clientId=abc") as ws:
        first = await ws.receive_json(timeout=5)
        assert first == {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc"},
        }
        await ws.send_str("not json")  # ignored, and it used up the "first message"
        await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.2)


async def test_failat_on_failing_graph_executed_list(sim: Sim) -> None:
    """Error in the first node: executed is empty, node_type is the class."""
    prompt = copy.deepcopy(requests("error.jsonl", "POST", "/prompt")[0]["request"]["prompt"])
    prompt["1"] = {
        "class_type": "FailAt",
        "inputs": {"image": ["9", 0], "steps": 2, "fail_at_step": 1, "seconds_per_step": 0},
    }
    prompt["9"] = probe_prompt()["1"] | {"inputs": {**probe_prompt()["1"]["inputs"], "steps": 1}}
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    answer = await sim.submit(prompt, cid)
    await rec.wait_end(answer["prompt_id"])
    error = of_type(rec.messages(), "execution_error")[0]
    assert error["node_id"] == "1" and error["executed"] == ["9"]
    assert error["exception_message"] == "FailAt: deliberate failure at step 1/2\n"


async def test_server_survives_garbage(sim: Sim) -> None:
    bodies: list[Any] = [
        None,
        5,
        "x",
        [],
        {"prompt": None},
        {"prompt": []},
        {"prompt": {"1": 5}},
        {"prompt": {"1": {"class_type": ["x"]}}},
        {"prompt": {"1": {"class_type": "SaveImage", "inputs": 3}}},
        {"prompt": {"1": {"class_type": "SaveImage", "inputs": {"images": [["x"], 0]}}}},
        {"prompt": {"1": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}},
        {"prompt": probe_prompt(), "extra_data": 3},
        {"prompt": probe_prompt(), "number": "x"},
        {"prompt": probe_prompt(), "partial_execution_targets": "2"},
    ]
    for body in bodies:
        status, _ = await sim.request("POST", "/prompt", json=body)
        assert status in (200, 400, 500), body
    for path in (
        "/view",
        "/view?filename=a%00b",
        "/view?filename=x&type=bogus",
        "/history?max_items=x",
    ):
        status, _ = await sim.request("GET", path)
        assert status in (200, 400, 404)
    assert (await sim.get("/prompt"))["exec_info"]["queue_remaining"] >= 0


async def test_shutdown_closes_sockets_promptly(tmp_path: Path) -> None:
    config = SimulatorConfig(time_scale=0.1, output_dir=tmp_path / "o", temp_dir=tmp_path / "t")
    app = create_app(config)
    scratch_input = app[CONFIG].input_dir
    assert scratch_input is not None and scratch_input.is_dir()
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{base}/ws")
        await ws.receive_json(timeout=5)
        async with session.post(f"{base}/prompt", json={"prompt": probe_prompt()}) as resp:
            assert resp.status == 200
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 2.0
        kinds = [msg.type async for msg in ws]  # queued frames, then the close
        assert ws.closed
        assert set(kinds) <= {aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY}
    assert not scratch_input.exists()  # the private scratch tree is removed
