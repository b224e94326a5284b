"""Bad input from ComfyUI: a fake ComfyUI, written here, feeds the real monitor process
truncated and lying frames, garbage JSON and events of prompts nobody submitted, then a
valid generation. The monitor must live through it all and publish that generation."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import requests
from aiohttp import WSMsgType, web
from PIL import Image

from generations.models import Generation
from lockngen import launcher
from tests.faults.support import TERMINAL, final_seq, record, tally
from tests.integration.clients import Watcher, slow_noise
from tests.support.procs import Proc, free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def image_bytes(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 90)).save(out, format=kind)
    return out.getvalue()


class FakeComfy:
    """Just enough of ComfyUI for a monitor: /ws, /prompt, /queue, /history, /view."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections: asyncio.Queue[tuple[web.WebSocketResponse, web.Request]] = asyncio.Queue()
        self.running: list[str] = []
        self.pending: list[str] = []
        self.history: dict[str, Any] = {}
        self.png = image_bytes("PNG")
        self.queue_body: str | None = None  # when set, GET /queue answers this text instead
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_get("/prompt", self.get_prompt)
        app.router.add_post("/prompt", self.post_prompt)
        app.router.add_get("/queue", self.queue)
        app.router.add_get("/history/{prompt_id}", self.history_item)
        app.router.add_get("/view", self.view)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def exec_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.running) + len(self.pending)}}

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId", "")
        await ws.send_str(
            json.dumps({"type": "status", "data": {"status": self.exec_info(), "sid": sid}})
        )
        await self.connections.put((ws, request))
        async for _ in ws:  # the feature_flags hello, and nothing else
            pass
        return ws

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.exec_info())

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.pending.append(body["prompt_id"])
        return web.json_response({"prompt_id": body["prompt_id"], "number": 0, "node_errors": {}})

    async def queue(self, request: web.Request) -> web.Response:
        if self.queue_body is not None:
            return web.Response(text=self.queue_body, content_type="application/json")
        item = lambda n, pid: [n, pid, {}, {}, ["2"]]  # noqa: E731
        return web.json_response(
            {
                "queue_running": [item(0, pid) for pid in self.running],
                "queue_pending": [item(i + 1, pid) for i, pid in enumerate(self.pending)],
            }
        )

    async def history_item(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def view(self, request: web.Request) -> web.Response:
        if request.query.get("filename") != "fake_00001_.png":
            return web.Response(status=404)
        return web.Response(body=self.png, content_type="image/png")


def event(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


def garbage(stranger: str) -> list[tuple[str, str | bytes]]:
    """Frames ComfyUI never sends (or sends for prompts that are not ours)."""
    texts: list[str] = [
        '{"type": "progress", "data": {"value": 3, ',  # truncated
        "",
        "null",
        "[]",
        '{"type": 5}',
        '{"type": "progress", "data": "x"}',
        '{"type": "progress", "data": {"value": "3", "max": 10}}',
        '{"type": "progress", "data": {"value": NaN, "max": Infinity}}',
        '{"type": "executing", "data": {"node": {"a": 1}}}',
        '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": "many"}}}}',
        '{"type": "execution_cached", "data": {"nodes": "1", "prompt_id": "x"}}',
        '{"type": "execution_error", "data": {"node_id": 1}}',
        "[" * 100_000,  # nested past any recursion limit
        '{"type": "logs", "data": {"entries": []}}',  # a type we do not use
        "x" * (2 * 1024 * 1024),  # 2 MiB of nothing
        # Events of a prompt that nobody here submitted.
        event("execution_start", prompt_id=stranger, timestamp=1),
        event("executing", node="1", prompt_id=stranger),
        event("progress", value=1, max=2, prompt_id=stranger, node="1"),
        event("progress", value=1, max=0, node="1"),
        event("progress_state", prompt_id=stranger, nodes={"1": {"value": 1, "max": 2}}),
        event(
            "executed",
            prompt_id=stranger,
            node="9",
            output={
                "images": [{"filename": "../../etc/passwd", "subfolder": "", "type": "output"}]
            },
        ),
        event("execution_success", prompt_id=stranger, timestamp=2),
        event(
            "execution_error",
            prompt_id=stranger,
            node_id="1",
            node_type="X",
            exception_message="boom",
            exception_type="E",
        ),
        event("execution_interrupted", prompt_id=stranger, node_id="1", node_type="X"),
        event("executing", node=None, prompt_id=stranger),
        event("executing", node=None),
    ]
    meta = json.dumps({"prompt_id": stranger, "node_id": "1", "image_type": "image/jpeg"})
    binaries: list[bytes] = [
        b"",
        b"\x00\x00",  # shorter than the event type
        struct.pack(">I", 1),  # a preview without its format
        struct.pack(">II", 1, 99) + b"img",  # an unknown image format
        struct.pack(">II", 4, 0xFFFFFFFF) + b"{}",  # metadata length: 4 GiB
        struct.pack(">II", 4, 50) + b'{"x":1}',  # metadata length past the frame's end
        struct.pack(">II", 4, 2) + b"{}" + b"img",  # metadata without image_type
        struct.pack(">II", 4, 5) + b"\xff\xfe\x00ab",  # metadata that is not UTF-8
        struct.pack(">II", 4, len(meta)) + meta.encode() + b"jpeg",  # a stranger's preview
        struct.pack(">II", 3, 10**9) + b"node",  # text frame: node id length lies
        struct.pack(">II", 3, 2) + b"n1" + b"\xff",  # text that is not UTF-8
        struct.pack(">I", 99) + b"??",  # an unknown binary event
    ]
    frames: list[tuple[str, str | bytes]] = [("text", t) for t in texts]
    frames += [("binary", b) for b in binaries]
    frames.append(("bad-utf8", b'{"type": "status", "data": "\xff\xfe"}'))
    return frames


async def send(ws: web.WebSocketResponse, kind: str, data: str | bytes) -> None:
    if kind == "text":
        await ws.send_str(data)  # type: ignore[arg-type]
    elif kind == "binary":
        await ws.send_bytes(data)  # type: ignore[arg-type]
    else:  # a text frame whose bytes are not UTF-8
        await ws.send_frame(data, WSMsgType.TEXT)  # type: ignore[arg-type]


def valid_generation(prompt_id: str, jpeg: bytes) -> list[tuple[str, str | bytes]]:
    """What ComfyUI sends for SlowNoise (5 steps) → SaveImage, previews included."""
    frames: list[tuple[str, str | bytes]] = [
        ("text", event("execution_start", prompt_id=prompt_id, timestamp=int(time.time()))),
        ("text", event("execution_cached", nodes=[], prompt_id=prompt_id)),
        ("text", event("executing", node="1", display_node="1", prompt_id=prompt_id)),
    ]
    meta = json.dumps({"node_id": "1", "prompt_id": prompt_id, "image_type": "image/jpeg"})
    for step in range(1, 6):
        frames.append(("text", event("progress", value=step, max=5, prompt_id=prompt_id, node="1")))
        frames.append(("binary", struct.pack(">II", 4, len(meta)) + meta.encode() + jpeg))
    image = {"filename": "fake_00001_.png", "subfolder": "", "type": "output"}
    frames += [
        ("text", event("executing", node="2", display_node="2", prompt_id=prompt_id)),
        ("text", event("executed", node="2", output={"images": [image]}, prompt_id=prompt_id)),
        ("text", event("execution_success", prompt_id=prompt_id, timestamp=int(time.time()))),
        ("text", event("executing", node=None, prompt_id=prompt_id)),
    ]
    return frames


async def fake_generation(fake: FakeComfy) -> tuple[str, str]:
    """A generation row on the fake ComfyUI, as the API would have made it: (prompt, id)."""
    prompt_id = str(uuid.uuid4())
    row = await asyncio.to_thread(
        Generation.objects.create,
        prompt_id=prompt_id,
        comfyui_url=fake.url,
        workflow=slow_noise(steps=5, seconds=0.1),
    )
    return prompt_id, str(row.id)


def monitor_of(rig: Any, fake: FakeComfy, name: str) -> Proc:
    """A monitor process of its own, watching the fake ComfyUI."""
    env = dict(rig.env, COMFYUI_URL=fake.url, COMFYUI_CLIENT_ID=f"lockngen-{name}")
    monitor = Proc(f"monitor-{name}", launcher.monitor(), rig.log_dir, env)
    return monitor.start()


@pytest_asyncio.fixture
async def fake_comfy() -> AsyncIterator[FakeComfy]:
    fake = FakeComfy()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_monitor_survives_garbage_from_comfyui(rig, fake_comfy) -> None:
    fake = fake_comfy
    prompt_id, gid = await fake_generation(fake)
    fake.pending = [prompt_id]
    monitor = monitor_of(rig, fake, "fake-comfy")
    sent = 0
    try:
        async with Watcher(f"{rig.ws_url}/api/ws/progress?generationId={gid}") as watcher:
            ws, request = await asyncio.wait_for(fake.connections.get(), 30)
            stranger = str(uuid.uuid4())
            for kind, data in garbage(stranger):
                await send(ws, kind, data)
                sent += 1
            # Then a frame cut off in the middle: its header promises 1000 bytes.
            request.transport.write(b"\x81\x7e\x03\xe8" + b'{"type": "progress"')
            await asyncio.sleep(0.2)
            request.transport.abort()
            sent += 1
            # The monitor reconnects; more garbage, then the real thing.
            ws, request = await asyncio.wait_for(fake.connections.get(), 30)
            for kind, data in garbage(str(uuid.uuid4()))[:12]:
                await send(ws, kind, data)
                sent += 1
            fake.pending, fake.running = [], [prompt_id]
            await ws.send_str(event("status", status=fake.exec_info()))
            for kind, data in valid_generation(prompt_id, image_bytes("JPEG")):
                if kind == "text" and '"execution_success"' in data:  # type: ignore[operator]
                    fake.running = []
                    fake.history[prompt_id] = {
                        "prompt": [0, prompt_id, {}, {}, ["2"]],
                        "outputs": {"2": {"images": [{"filename": "fake_00001_.png"}]}},
                        "status": {"status_str": "success", "completed": True, "messages": []},
                    }
                await send(ws, kind, data)
                await asyncio.sleep(0.05)
            await ws.send_str(event("status", status=fake.exec_info()))
            msgs = await watcher.until_done(gid, timeout=30)
        alive = monitor.popen.poll() is None
    finally:
        monitor.stop()
    log = monitor.log_path.read_text(errors="replace")
    skipped = log.count("skipping malformed ComfyUI frame") + log.count("not UTF-8")
    body = final_seq(rig.web_url, gid)
    figures = tally(msgs, body["seq"], gid)
    record(
        "bad input: ComfyUI garbage to the monitor",
        {
            "kind": "bad-input",
            "sent": sent,
            "skippedByMonitor": skipped,
            "monitorAlive": alive,
            "monitorTracebacks": log.count("Traceback"),
            "monitorConnections": log.count("connected to ComfyUI"),
            "watched": {"id": gid, **figures.as_json()},
        },
    )
    assert alive, monitor.tail()
    assert "monitor step failed" not in log, log[-3000:]
    assert skipped >= 20, skipped
    assert log.count("connected to ComfyUI") >= 2  # it came back after the cut-off frame
    assert figures.terminal == "generation.completed", (figures, monitor.tail())
    assert figures.lost == figures.duplicated == figures.out_of_order == 0, figures
    assert body["status"] == "completed" and len(body["images"]) == 1
    assert any(m["data"]["previewUrl"] for m in msgs)
    steps = [m["data"]["step"] for m in msgs if m["data"]["step"]]
    assert steps and max(steps) == 5
    image = requests.get(rig.web_url + body["images"][0], timeout=5)
    assert image.status_code == 200 and image.content == fake.png
    # Nothing was made of the stranger's events: no other generation appeared.
    assert await asyncio.to_thread(Generation.objects.count) == 1


async def test_a_queue_in_an_unknown_shape_does_not_fail_a_running_generation(
    rig, fake_comfy
) -> None:
    """ "I could not read the answer" is not "your generation failed"."""
    fake = fake_comfy
    prompt_id, gid = await fake_generation(fake)
    fake.running = [prompt_id]
    fake.queue_body = json.dumps({"queue_running": [{"job": prompt_id}], "queue_pending": []})
    monitor = monitor_of(rig, fake, "fake-queue")
    frames = valid_generation(prompt_id, image_bytes("JPEG"))
    try:
        async with Watcher(f"{rig.ws_url}/api/ws/progress?generationId={gid}") as watcher:
            ws, request = await asyncio.wait_for(fake.connections.get(), 30)
            for kind, data in frames[:5]:  # started, two steps
                await send(ws, kind, data)
            await watcher.until_step(gid, 1)
            request.transport.abort()  # every socket dropped: the monitor reconciles
            ws, request = await asyncio.wait_for(fake.connections.get(), 30)
            for garbled in ("<html>busy</html>", '{"queue_running": "x"}'):
                fake.queue_body = garbled
                await ws.send_str(event("status", status=fake.exec_info()))
                await asyncio.sleep(4)  # past the lost-confirmation delay and a retry
            row_now = await asyncio.to_thread(Generation.objects.get, id=gid)
            assert row_now.status == "running", row_now.error
            assert not any(m["type"] in TERMINAL for m in watcher.messages)
            fake.queue_body = None
            fake.running = []
            fake.history[prompt_id] = {
                "outputs": {"2": {"images": [{"filename": "fake_00001_.png"}]}},
                "status": {"status_str": "success", "completed": True, "messages": []},
            }
            for kind, data in frames[5:]:
                await send(ws, kind, data)
            msgs = await watcher.until_done(gid, timeout=30)
    finally:
        monitor.stop()
    log = monitor.log_path.read_text(errors="replace")
    assert msgs[-1]["type"] == "generation.completed", monitor.tail()
    assert log.count("/queue item is object {job}") == 1, log[-3000:]
    assert "no longer knows this prompt" not in log
