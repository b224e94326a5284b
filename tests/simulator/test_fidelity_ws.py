"""Replay every recorded scenario against the simulator and compare what each socket receives.

For each connection of a trace, the simulator's connection must receive the same sequence of
frame kinds (see frames.py) and the same sequence of ``status`` queue_remaining values. Client
actions (interrupt, disconnect, reconnect) are triggered on the same events as the recorder's.
Every scenario runs once per recorded server (``each_server``): the 0.3.64 variant against
traces/, the fork-0.12 variant against traces-fork-0.12.1/.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .frames import TraceSet, message_kinds, queue_ids, shape, split
from .harness import Recorder, Sim, StartSim, each_server

pytestmark = [pytest.mark.asyncio, each_server]


def prompts(recorded: TraceSet, trace: str) -> list[dict[str, Any]]:
    """The POST /prompt bodies a trace sent, in order."""
    return [h["request"] for h in recorded.requests(trace, "POST", "/prompt")]


def client() -> str:
    return uuid.uuid4().hex


def assert_same(recorded: TraceSet, trace: str, conn: str, recorder: Recorder) -> None:
    expected_kinds, expected_status = split(recorded.recorded_frames(trace, conn))
    kinds, status = split(recorder.kinds())
    assert kinds == expected_kinds, f"{trace} conn {conn}: frame kinds differ"
    assert status == expected_status, f"{trace} conn {conn}: status values differ"


async def assert_history(
    sim: Sim, prompt_id: str, recorded: TraceSet, trace: str, index: int = 0
) -> dict[str, Any]:
    """GET /history/{id} has the structure of the trace's recorded answer for that prompt."""
    body = await sim.get(f"/history/{prompt_id}")
    assert list(body) == [prompt_id]
    assert shape(body[prompt_id]) == shape(recorded.history(trace, index))
    return body[prompt_id]


async def run_one(
    sim: Sim, recorded: TraceSet, trace: str, flags: bool = True
) -> tuple[Recorder, str]:
    """Connect, submit the trace's single prompt, wait for the end marker."""
    cid = client()
    rec = await sim.connect(cid, flags=flags)
    answer = await sim.submit(prompts(recorded, trace)[0]["prompt"], cid)
    await rec.wait_end(answer["prompt_id"])
    await sim.wait_done(answer["prompt_id"])
    return rec, answer["prompt_id"]


async def test_success(sim: Sim, recorded: TraceSet) -> None:
    rec, prompt_id = await run_one(sim, recorded, "success.jsonl")
    assert_same(recorded, "success.jsonl", "C", rec)
    entry = await assert_history(sim, prompt_id, recorded, "success.jsonl")
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True


async def test_cached(sim: Sim, recorded: TraceSet) -> None:
    _, first = await run_one(
        sim, recorded, "success.jsonl"
    )  # warm the cache with the identical graph
    rec, prompt_id = await run_one(sim, recorded, "cached.jsonl")
    assert_same(recorded, "cached.jsonl", "C", rec)
    entry = await assert_history(sim, prompt_id, recorded, "cached.jsonl")
    earlier = (await sim.get(f"/history/{first}"))[first]
    assert entry["outputs"] == earlier["outputs"]  # the cached file, not a new one


async def test_success_legacy_preview(sim: Sim, recorded: TraceSet) -> None:
    rec, prompt_id = await run_one(sim, recorded, "success_legacy_preview.jsonl", flags=False)
    assert_same(recorded, "success_legacy_preview.jsonl", "C", rec)
    entry = await assert_history(sim, prompt_id, recorded, "success_legacy_preview.jsonl")
    temp = entry["outputs"]["4"]["images"][0]
    assert temp["type"] == "temp" and temp["filename"].startswith("ComfyUI_temp_")
    status, data = await sim.request("GET", "/view", params=temp)
    assert status == 200 and data[:4] == b"\x89PNG"


async def test_error(sim: Sim, recorded: TraceSet) -> None:
    rec, prompt_id = await run_one(sim, recorded, "error.jsonl")
    assert_same(recorded, "error.jsonl", "C", rec)
    entry = await assert_history(sim, prompt_id, recorded, "error.jsonl")
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    error = next(m["data"] for m in rec.messages() if m["type"] == "execution_error")
    assert error["exception_message"] == "FailAt: deliberate failure at step 3/6\n"
    assert error["exception_type"] == "RuntimeError"
    assert error["executed"] == ["1"]
    assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])
    assert set(error["current_inputs"]) == {"image", "steps", "fail_at_step", "seconds_per_step"}


async def test_interrupt(sim: Sim, recorded: TraceSet) -> None:
    cid = client()
    rec = await sim.connect(cid)
    answer = await sim.submit(prompts(recorded, "interrupt.jsonl")[0]["prompt"], cid)
    await rec.wait_progress(2)
    await sim.interrupt()  # empty body: global
    await rec.wait_end(answer["prompt_id"])
    await sim.wait_done(answer["prompt_id"])
    assert_same(recorded, "interrupt.jsonl", "C", rec)
    entry = await assert_history(sim, answer["prompt_id"], recorded, "interrupt.jsonl")
    assert message_kinds(entry["status"])[-1] == "execution_interrupted"
    assert entry["status"]["completed"] is False


async def test_interrupt_targeted(start_sim: StartSim, recorded: TraceSet) -> None:
    sim = await start_sim(time_scale=0.2)
    cid = client()
    rec = await sim.connect(cid)
    first, second = [
        await sim.submit(p["prompt"], cid) for p in prompts(recorded, "interrupt_targeted.jsonl")
    ]
    await rec.wait_progress(2)
    await sim.interrupt(second["prompt_id"])  # queued, not running: ignored
    await rec.wait_progress(3)
    await sim.interrupt(first["prompt_id"])  # running: interrupted at the next step
    await rec.wait_end(second["prompt_id"])
    await sim.wait_done(first["prompt_id"], second["prompt_id"])
    assert_same(recorded, "interrupt_targeted.jsonl", "C", rec)


async def test_queued(sim: Sim, recorded: TraceSet) -> None:
    cid = client()
    rec = await sim.connect(cid)
    first, second = [await sim.submit(p["prompt"], cid) for p in prompts(recorded, "queued.jsonl")]
    queue = await sim.get("/queue")
    assert queue_ids(queue["queue_running"]) == [first["prompt_id"]]
    assert queue_ids(queue["queue_pending"]) == [second["prompt_id"]]
    busy = next(
        h
        for h in recorded.requests("queued.jsonl", "GET", "/queue")
        if h["response"]["queue_running"]
    )
    assert shape(queue) == shape(busy["response"])  # 5-element lists, or the fork's objects
    await rec.wait_end(second["prompt_id"])
    await sim.wait_done(first["prompt_id"], second["prompt_id"])
    assert_same(recorded, "queued.jsonl", "C", rec)
    assert second["number"] == first["number"] + 1


async def test_queue_delete(start_sim: StartSim, recorded: TraceSet) -> None:
    sim = await start_sim(time_scale=0.25)
    cid = client()
    rec = await sim.connect(cid)
    bodies = prompts(recorded, "queue_delete.jsonl")
    answers = [
        await sim.submit(b["prompt"], cid, **({"front": True} if b.get("front") else {}))
        for b in bodies
    ]
    assert answers[3]["number"] < 0  # front: true
    pending = queue_ids((await sim.get("/queue"))["queue_pending"])
    assert pending == [answers[i]["prompt_id"] for i in (3, 2, 1)]  # heap order, as recorded
    status, _ = await sim.request("POST", "/queue", json={"delete": [answers[2]["prompt_id"]]})
    assert status == 200
    kept = [answers[i]["prompt_id"] for i in (0, 1, 3)]
    await rec.wait_end(answers[1]["prompt_id"])
    history = await sim.wait_done(*kept)
    assert_same(recorded, "queue_delete.jsonl", "C", rec)
    assert await sim.get(f"/history/{answers[2]['prompt_id']}") == {}
    assert list(history) == [answers[i]["prompt_id"] for i in (0, 3, 1)]  # front ran second


async def test_foreign_client(sim: Sim, recorded: TraceSet) -> None:
    trace = "foreign_client.jsonl"
    a_id = client()
    b = await sim.connect(client(), name="B")
    a = await sim.connect(a_id, name="A")
    p1, p2, p3 = prompts(recorded, trace)
    first = await sim.submit(p1["prompt"], a_id)
    await sim.wait_done(first["prompt_id"])
    second = await sim.submit(p2["prompt"])  # no client_id
    await sim.wait_done(second["prompt_id"])
    await a.close()
    third = await sim.submit(p3["prompt"], a_id)  # frames for A are dropped
    await sim.wait_done(third["prompt_id"])
    assert_same(recorded, trace, "A", a)
    assert_same(recorded, trace, "B", b)


async def test_no_client_id_error_interrupt(sim: Sim, recorded: TraceSet) -> None:
    trace = "no_client_id_error_interrupt.jsonl"
    b = await sim.connect(client(), name="B")
    failing, interrupted = prompts(recorded, trace)
    first = await sim.submit(failing["prompt"])
    await sim.wait_done(first["prompt_id"])
    second = await sim.submit(interrupted["prompt"])
    await b.wait_progress(2, second["prompt_id"])
    await sim.interrupt()
    await sim.wait_done(second["prompt_id"])
    assert_same(recorded, trace, "B", b)
    history = await sim.get(f"/history/{first['prompt_id']}")
    kinds = message_kinds(history[first["prompt_id"]]["status"])
    assert kinds[-1] == "execution_error"  # invisible on the WS, present in history


async def test_reconnect(start_sim: StartSim, recorded: TraceSet) -> None:
    trace = "reconnect.jsonl"
    sim = await start_sim(time_scale=0.2)
    cid = client()
    c = await sim.connect(cid, name="C")
    answer = await sim.submit(prompts(recorded, trace)[0]["prompt"], cid)
    prompt_id = answer["prompt_id"]
    await c.wait_progress(2)
    await c.close()
    await sim.timeline_has(prompt_id, 3)  # L joins during step 4 (the fork sends it progress)
    late = await sim.connect(client(), name="L")
    await sim.timeline_has(prompt_id, 4)  # C2 comes back during step 5, like the recording
    c2 = await sim.connect(cid, name="C2")
    await c2.wait_end(prompt_id)
    await sim.wait_done(prompt_id)
    c3 = await sim.connect(cid, flags=recorded.sent_flags(trace, "C3"), name="C3")
    for rec in (late, c2, c3):
        await rec.close()
    anonymous = await sim.connect(None, flags=recorded.sent_flags(trace, "N"), name="N")
    for name, rec in (("C", c), ("L", late), ("C2", c2), ("C3", c3), ("N", anonymous)):
        assert_same(recorded, trace, name, rec)
    sid = anonymous.messages()[0]["data"]["sid"]
    assert len(sid) == 32 and int(sid, 16) >= 0  # uuid4().hex
