"""What each simulated server variant does differently (variants.py), beyond the recordings.

The 0.3.64 and fork-0.12 variants are compared frame by frame with their recordings in the
fidelity tests; ``modern`` has no recording, so its CHANGES-since-0.3.64.md facts are checked
here one by one.
"""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .frames import requests
from .harness import Sim, StartSim
from .test_behaviour import txt2img

pytestmark = pytest.mark.asyncio

ALL_VARIANTS = ("0.3.64", "fork-0.12", "modern")


def probe_prompt(steps: int = 8, seed: int = 424242) -> dict[str, Any]:
    """success.jsonl's SlowNoise (0.3 s/step, JPEG previews) -> SaveImage graph."""
    prompt = copy.deepcopy(requests("success.jsonl", "POST", "/prompt")[0]["request"]["prompt"])
    prompt["1"]["inputs"].update(steps=steps, seed=seed)
    return prompt


def failing_prompt() -> dict[str, Any]:
    return copy.deepcopy(requests("error.jsonl", "POST", "/prompt")[0]["request"]["prompt"])


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if m["type"] == kind]


async def run(sim: Sim, prompt: dict[str, Any], flags: bool = True) -> tuple[Any, str]:
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid, flags=flags)
    prompt_id = (await sim.submit(prompt, cid))["prompt_id"]
    await rec.wait_end(prompt_id)
    await sim.wait_done(prompt_id)
    return rec, prompt_id


# --------------------------------------------------------------------------- every variant


@pytest.mark.parametrize(
    ("variant", "version", "extra_feature_keys"),
    [
        ("0.3.64", "0.3.64", set()),
        ("fork-0.12", "0.12.1", {"extension"}),
        (
            "modern",
            "0.46.0",
            {"extension", "supports_model_type_tags", "node_replacements", "assets"},
        ),
    ],
)
async def test_version_and_features(
    sim: Sim, variant: str, version: str, extra_feature_keys: set[str]
) -> None:
    stats = await sim.get("/system_stats")
    assert stats["system"]["comfyui_version"] == version  # the monitor logs it
    features = await sim.get("/api/features")
    assert set(features) == {"supports_preview_metadata", "max_upload_size"} | extra_feature_keys
    rec = await sim.connect("flags")
    assert of_type(rec.messages(), "feature_flags") == [features]


# Which jobs routes exist: 0.3.64 predates the jobs API (v0.6.0); v0.12.1 has the read side;
# cancel came with v0.26.0. POST /api/jobs/cancel on fork-0.12 hits GET /api/jobs/{job_id}: 405.
JOBS_ROUTES = {
    "0.3.64": {"list": 404, "get": 404, "cancel": 404, "bulk": 404},
    "fork-0.12": {"list": 200, "get": 404, "cancel": 404, "bulk": 405},
    "modern": {"list": 200, "get": 404, "cancel": 200, "bulk": 200},
}


@pytest.mark.parametrize("variant", ALL_VARIANTS)
async def test_jobs_routes_per_variant(sim: Sim, variant: str) -> None:
    job = str(uuid.uuid4())
    calls = {
        "list": ("GET", "/api/jobs"),
        "get": ("GET", f"/api/jobs/{job}"),
        "cancel": ("POST", f"/api/jobs/{job}/cancel"),
        "bulk": ("POST", "/api/jobs/cancel"),
    }
    found = {}
    for name, (method, path) in calls.items():
        found[name], body = await sim.request(method, path, json={"job_ids": [job]})
        if name == "get" and found[name] == 404 and variant != "0.3.64":
            assert body == {"error": "Job not found"}
    assert found == JOBS_ROUTES[variant]


@pytest.mark.parametrize("variant", ["0.3.64", "fork-0.12"])
async def test_older_servers_take_any_prompt_id(sim: Sim, variant: str) -> None:
    """Only newer upstream insists on a canonical UUID (see test_fidelity_http for modern)."""
    status, body = await sim.request(
        "POST", "/prompt", json={"prompt": probe_prompt(steps=1), "prompt_id": "my-job-1"}
    )
    assert status == 200 and body["prompt_id"] == "my-job-1"
    await sim.wait_done("my-job-1")


@pytest.mark.parametrize("variant", ALL_VARIANTS)
async def test_create_time_in_extra_data(sim: Sim, variant: str) -> None:
    before = int(time.time() * 1000)
    answer = await sim.submit(probe_prompt(steps=2), "cid")
    queue = await sim.get("/queue")
    item = (queue["queue_running"] + queue["queue_pending"])[0]
    extra = item["extra_data"] if isinstance(item, dict) else item[3]
    history = await sim.wait_done(answer["prompt_id"])
    stored = history[answer["prompt_id"]]["prompt"][3]
    if variant == "0.3.64":
        assert extra == stored == {"client_id": "cid"}
    else:
        assert list(extra) == ["client_id", "create_time"] and extra == stored
        assert before <= extra["create_time"] <= int(time.time() * 1000)


# --------------------------------------------------------------------------- fork-0.12


@pytest.mark.parametrize("variant", ["fork-0.12"])
async def test_fork_leaks_abs_path_and_reads_jobs_from_string_messages(
    sim: Sim, variant: str
) -> None:
    rec, done = await run(sim, probe_prompt(steps=2))
    image = of_type(rec.messages(), "executed")[0]["output"]["images"][0]
    assert list(image) == ["abs_path", "filename", "subfolder", "type"]
    assert Path(image["abs_path"]).is_absolute() and Path(image["abs_path"]).is_file()
    _, failed = await run(sim, failing_prompt())
    history = await sim.get(f"/history/{failed}")
    message = history[failed]["status"]["messages"][-1]
    assert message == "execution_error: FailAt: deliberate failure at step 3/6\n"
    job = await sim.get(f"/api/jobs/{failed}")
    assert job["status"] == "failed" and "execution_start_time" not in job  # strings: no times
    assert (await sim.get(f"/api/jobs/{done}"))["status"] == "completed"


# --------------------------------------------------------------------------- modern


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_throttles_progress_and_reports_loading(sim: Sim, variant: str) -> None:
    rec, _ = await run(sim, probe_prompt(steps=8))
    steps = [(p["value"], p["max"]) for p in of_type(rec.messages(), "progress")]
    # 0.3 simulated s per step, at most one frame per 0.5 s, the final step always
    assert steps == [(1, 8), (3, 8), (5, 8), (7, 8), (8, 8)]
    states = [s["nodes"]["1"] for s in of_type(rec.messages(), "progress_state")]
    loading = [i for i, s in enumerate(states) if "activity" in s]
    assert len(loading) == 1 and states[loading[0]]["activity"] == "loading"
    assert states[loading[0]]["value"] == 0.0 and states[loading[0] + 1]["value"] == 1
    previews = [f for f in rec.frames if isinstance(f, bytes)]
    assert len(previews) == len(steps)  # a swallowed update sends no preview either


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_sampler_throttle_keeps_order_and_final_step(sim: Sim, variant: str) -> None:
    rec, _ = await run(sim, txt2img(steps=30))
    values = [p["value"] for p in of_type(rec.messages(), "progress")]
    assert values == [1, 11, 21, 30]  # 0.05 s steps: one per 0.5 s, then the last
    states = of_type(rec.messages(), "progress_state")
    loading = [s for s in states if s["nodes"].get("3", {}).get("activity") == "loading"]
    assert len(loading) == 1


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_asset_ids_and_seed_broadcast(sim: Sim, variant: str) -> None:
    observer = await sim.connect("observer", name="observer")
    rec, first = await run(sim, probe_prompt(steps=1, seed=1))
    image = of_type(rec.messages(), "executed")[0]["output"]["images"][0]
    assert uuid.UUID(image["id"]) and image["preview_id"] == image["id"]
    history = await sim.get(f"/history/{first}")
    assert history[first]["outputs"]["2"]["images"][0] == image
    again, _ = await run(sim, probe_prompt(steps=1, seed=1))  # cached: registered again
    assert of_type(again.messages(), "executed")[0]["output"]["images"][0]["id"] == image["id"]
    seeds = of_type(observer.messages(), "assets.seed.completed")  # broadcast to everyone
    assert [(s["total"], s["created"], s["skipped"]) for s in seeds] == [(1, 1, 0), (1, 0, 1)]
    assert set(seeds[0]) == {"phase", "total", "created", "enriched", "skipped", "elapsed"}


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_jobs_status_mapping(start_sim: StartSim, variant: str) -> None:
    sim = await start_sim(time_scale=0.3)
    _, done = await run(sim, probe_prompt(steps=1))
    _, failed = await run(sim, failing_prompt())
    running = await sim.submit(probe_prompt(steps=20, seed=2))
    pending = await sim.submit(probe_prompt(steps=1, seed=3))
    queue = await sim.get("/queue")
    assert all(isinstance(i, list) and len(i) == 5 for i in queue["queue_pending"])
    jobs = {j["id"]: j for j in (await sim.get("/api/jobs"))["jobs"]}
    assert jobs[done]["status"] == "completed" and jobs[failed]["status"] == "failed"
    assert jobs[running["prompt_id"]]["status"] == "in_progress"
    assert jobs[pending["prompt_id"]]["status"] == "pending"
    error = (await sim.get(f"/api/jobs/{failed}"))["execution_error"]
    assert error["exception_type"] == "RuntimeError"
    assert jobs[done]["execution_start_time"] <= jobs[done]["execution_end_time"]
    assert all(isinstance(j["create_time"], int) for j in jobs.values())
    await sim.request("POST", "/api/jobs/cancel", json={"job_ids": [running["prompt_id"]]})
    await sim.wait_done(running["prompt_id"], pending["prompt_id"])
    assert (await sim.get(f"/api/jobs/{running['prompt_id']}"))["status"] == "cancelled"
    assert (await sim.get(f"/api/jobs/{pending['prompt_id']}"))["status"] == "completed"


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_cancel_is_idempotent_and_race_free(start_sim: StartSim, variant: str) -> None:
    sim = await start_sim(time_scale=0.3)
    _, done = await run(sim, probe_prompt(steps=1))
    for job in (done, str(uuid.uuid4())):  # finished, unknown: a no-op, still 200
        status, body = await sim.request("POST", f"/api/jobs/{job}/cancel")
        assert (status, body) == (200, {"cancelled": False})
    status, body = await sim.request("POST", "/api/jobs/cancel", json={"job_ids": [done]})
    assert (status, body) == (200, {"cancelled": False})
    for bad in ("{not json", '{"job_ids": "x"}', '{"job_ids": ["NOT-A-UUID"]}'):
        status, _ = await sim.request("POST", "/api/jobs/cancel", data=bad)
        assert status == 400
    # Cancelling a running job must not leak into the one queued behind it.
    cid = uuid.uuid4().hex
    rec = await sim.connect(cid)
    first = (await sim.submit(probe_prompt(steps=20, seed=4), cid))["prompt_id"]
    second = (await sim.submit(probe_prompt(steps=2, seed=5), cid))["prompt_id"]
    await rec.wait_for(lambda m: m["type"] == "progress")
    for _ in range(2):  # twice: the second call finds it still running (or already gone)
        status, body = await sim.request("POST", f"/api/jobs/{first}/cancel")
        assert status == 200 and isinstance(body["cancelled"], bool)
    await rec.wait_end(second)
    await sim.wait_done(first, second)
    assert (await sim.get(f"/api/jobs/{first}"))["status"] == "cancelled"
    assert (await sim.get(f"/api/jobs/{second}"))["status"] == "completed"


@pytest.mark.parametrize("variant", ["modern"])
async def test_modern_keeps_upstream_shapes(sim: Sim, variant: str) -> None:
    """Where the fork and CHANGES differ, modern follows CHANGES."""
    rec, prompt_id = await run(sim, probe_prompt(steps=2), flags=False)
    assert any(isinstance(f, bytes) and f[:4] == b"\0\0\0\1" for f in rec.frames)  # type 1
    image = of_type(rec.messages(), "executed")[0]["output"]["images"][0]
    assert "abs_path" not in image
    history = await sim.get(f"/history/{prompt_id}")
    assert [m[0] for m in history[prompt_id]["status"]["messages"]][-1] == "execution_success"
    unknown = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    status, body = await sim.request("POST", "/prompt", json={"prompt": unknown})
    assert status == 400 and body["error"]["type"] == "missing_node_type"
    assert body["error"]["extra_info"] == {
        "node_id": "1",
        "class_type": "NoSuchNode",
        "node_title": "NoSuchNode",
    }
    broken = probe_prompt()
    del broken["1"]["inputs"]["steps"]
    status, body = await sim.request("POST", "/prompt", json={"prompt": broken})
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["extra_info"] == {}  # existing error types unchanged upstream
