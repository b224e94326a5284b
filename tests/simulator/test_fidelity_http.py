"""HTTP answers compared with the recorded ones: validation errors, history, queue, files, facts.

Tests marked ``each_server`` run against both recordings (0.3.64 and the fork at v0.12.1);
the rest compare with answers only 0.3.64 was recorded giving.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .frames import RECORDED, TRACES, TraceSet, requests, shape
from .harness import Sim, StartSim, each_server

pytestmark = pytest.mark.asyncio

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def normalized(body: Any) -> Any:
    """Drop what cannot match (tracebacks, ids, counters) and order-insensitive error lists."""
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key == "traceback":
                assert isinstance(value, list) and all(isinstance(v, str) for v in value)
                out[key] = "<traceback>"
            elif key in ("prompt_id", "number"):
                out[key] = "<id>"
            elif key == "errors":
                out[key] = sorted((normalized(e) for e in value), key=json.dumps)
            else:
                out[key] = normalized(value)
        return out
    if isinstance(body, list):
        return [normalized(v) for v in body]
    return body


def invalid_cases(recorded: TraceSet) -> list[dict[str, Any]]:
    """The POST /prompt exchanges of invalid.jsonl; both recordings made the same 8."""
    return recorded.requests("invalid.jsonl", "POST", "/prompt")


# Only the 0.3.64 recording annotates its cases; they name the test ids of both.
CASE_NAMES = [note[:40] for note in RECORDED.notes("invalid.jsonl")]


@each_server
@pytest.mark.parametrize("index", range(len(CASE_NAMES)), ids=CASE_NAMES)
async def test_invalid_prompt_answers(sim: Sim, recorded: TraceSet, index: int) -> None:
    case = invalid_cases(recorded)[index]
    status, body = await sim.request("POST", "/prompt", json=case["request"])
    assert status == case["status"]
    assert normalized(body) == normalized(case["response"])


@each_server
async def test_partial_valid_runs_only_the_valid_output(sim: Sim, recorded: TraceSet) -> None:
    case = invalid_cases(recorded)[-1]
    assert case["status"] == 200 and case["response"]["node_errors"]
    _, answer = await sim.request("POST", "/prompt", json=case["request"])
    history = await sim.wait_done(answer["prompt_id"])
    entry = history[answer["prompt_id"]]
    assert shape(entry) == shape(recorded.history("invalid.jsonl"))
    assert list(entry["outputs"]) == ["2"] and entry["prompt"][4] == ["2"]


def extra_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = json.loads((TRACES / "validation_extra.json").read_text())
    return sorted(cases.items())


@pytest.mark.parametrize("case", extra_cases(), ids=lambda c: c[0])
async def test_validation_extra_answers(start_sim: StartSim, case: tuple[str, Any]) -> None:
    sim = await start_sim(checkpoints=[])  # the recording server had no models installed
    name, recorded = case
    if name.startswith("GET "):
        status, body = await sim.request("GET", name[4:])
    elif name == "interrupt_not_running":
        status, body = await sim.request("POST", "/interrupt")
    elif name == "history_clear":
        status, body = await sim.request("POST", "/history", json={"clear": True})
    elif "request_raw" in recorded:
        status, body = await sim.request("POST", "/prompt", data=recorded["request_raw"])
    else:
        status, body = await sim.request("POST", "/prompt", json=recorded["request"])
    assert status == recorded["status"]
    if isinstance(body, bytes):
        assert body.decode() == recorded["response"]
    else:
        assert normalized(body) == normalized(recorded["response"])


async def test_content_types(sim: Sim) -> None:
    async with sim.session.post(f"{sim.base}/prompt", data="{not json") as resp:
        assert resp.status == 500 and resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    for method, path in (("POST", "/interrupt"), ("GET", "/view?filename=nope.png")):
        async with sim.session.request(method, sim.base + path) as resp:
            assert "Content-Type" not in resp.headers or resp.content_length == 0
    async with sim.session.get(f"{sim.base}/prompt") as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_invalid_prompt_id_and_counter(start_sim: StartSim) -> None:
    sim = await start_sim(variant="modern")  # 0.3.64 took any prompt_id
    prompt = requests("success.jsonl", "POST", "/prompt")[0]["request"]["prompt"]
    numbers = []
    for bad in ("not-a-uuid", str(uuid.uuid4()).upper(), uuid.uuid4().hex):
        status, body = await sim.request(
            "POST", "/prompt", json={"prompt": prompt, "prompt_id": bad}
        )
        assert status == 400
        assert body["error"]["type"] == "invalid_prompt_id" and body["node_errors"] == {}
    status, body = await sim.request("POST", "/prompt", json={"client_id": "x"})  # no_prompt
    chosen = str(uuid.uuid4())
    answer = await sim.submit(prompt, prompt_id=chosen)
    assert answer["prompt_id"] == chosen
    numbers.append(answer["number"])
    assert numbers == [4]  # three invalid ids and no_prompt each consumed a number
    await sim.wait_done(chosen)


@each_server
async def test_history_queue_view_and_facts(sim: Sim, recorded: TraceSet) -> None:
    """The HTTP calls success.jsonl made after its prompt, answered in the recorded shapes."""
    trace = "success.jsonl"
    prompt = recorded.requests(trace, "POST", "/prompt")[0]["request"]
    answer = await sim.submit(prompt["prompt"], prompt["client_id"])
    history = await sim.wait_done(answer["prompt_id"])
    entry = history[answer["prompt_id"]]
    assert shape(entry) == shape(recorded.history(trace))
    assert entry["prompt"][2] == prompt["prompt"] and entry["prompt"][4] == ["2"]
    image = entry["outputs"]["2"]["images"][0]
    assert image["filename"].startswith("probe_") and image["filename"].endswith("_.png")
    status, data = await sim.request("GET", "/view", params=image)
    assert status == 200 and data.startswith(PNG_MAGIC)
    status, data = await sim.request("GET", "/view", params={**image, "preview": "webp;50"})
    assert status == 200 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    for recorded_http in recorded.requests(trace, "GET", "/"):
        path = recorded_http["path"]
        if path.startswith(("/view", "/history/")):
            continue
        status, body = await sim.request("GET", path)
        assert status == recorded_http["status"], path
        expected = recorded_http["response"]
        if path.startswith("/history"):
            assert [shape(v) for v in body.values()] == [shape(v) for v in expected.values()]
        elif path in ("/system_stats",):
            assert shape(body)["devices"] == shape(expected)["devices"]
            assert set(body["system"]) == set(expected["system"])
            assert body["system"]["comfyui_version"] == expected["system"]["comfyui_version"]
        else:
            assert body == expected, path


async def test_object_info_is_the_recorded_one(start_sim: StartSim) -> None:
    sim = await start_sim(checkpoints=[])
    everything = await sim.get("/object_info")
    for path in sorted(TRACES.glob("object_info_*.json")):
        recorded = json.loads(path.read_text())
        name = next(iter(recorded))
        assert await sim.get(f"/object_info/{name}") == recorded
        assert await sim.get(f"/api/object_info/{name}") == recorded
        assert everything[name] == recorded[name]
