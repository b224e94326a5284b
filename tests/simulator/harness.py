"""The simulator tests' harness: a simulator app on a loopback port and frame recorders
(the fixtures that start them are in tests/simulator/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from comfyui import protocol

from .frames import TRACE_SETS, Kind, live_kind

# Fast enough for a short suite, slow enough that an HTTP call lands inside a step.
TIME_SCALE = 0.1

# A fidelity test marked with this runs once per recorded server; its simulators play the
# variant of that recording (``recorded`` -> ``variant`` -> ``start_sim``).
each_server = pytest.mark.parametrize(
    "recorded", TRACE_SETS, indirect=True, ids=[t.variant for t in TRACE_SETS]
)


@dataclass
class Recorder:
    """One client WebSocket; every frame it receives is kept in order."""

    name: str
    ws: aiohttp.ClientWebSocketResponse
    frames: list[str | bytes] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.frames.append(bytes(msg.data))
        self.closed = True

    def kinds(self) -> list[Kind | int]:
        return [live_kind(f) for f in self.frames]

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames if isinstance(f, str)]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> None:
        """Until a received JSON message satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while not any(predicate(m) for m in self.messages()):
            if time.monotonic() > deadline or self.closed:
                raise AssertionError(f"{self.name}: no matching frame; got {self.kinds()}")
            await asyncio.sleep(0.002)

    async def wait_progress(self, value: float, prompt_id: str | None = None) -> None:
        """Until a ``progress`` frame with ``value`` (of ``prompt_id`` if given) arrived."""

        def match(m: dict[str, Any]) -> bool:
            data = m["data"]
            wanted = prompt_id is None or data.get("prompt_id") == prompt_id
            return m["type"] == "progress" and data["value"] == value and wanted

        await self.wait_for(match)

    async def wait_end(self, prompt_id: str, timeout: float = 10) -> None:
        await self.wait_for(
            lambda m: (
                m["type"] == "executing"
                and m["data"].get("node") is None
                and m["data"].get("prompt_id") == prompt_id
            ),
            timeout,
        )

    async def close(self) -> None:
        await self.ws.close()
        await self._task


@dataclass
class Sim:
    """A running simulator and an HTTP session talking to it."""

    base: str
    app: web.Application
    session: aiohttp.ClientSession
    recorders: list[Recorder] = field(default_factory=list)

    async def connect(
        self, client_id: str | None = None, flags: bool = True, name: str = ""
    ) -> Recorder:
        url = f"{self.base}/ws" + (f"?clientId={client_id}" if client_id else "")
        ws = await self.session.ws_connect(url)
        if flags:
            await ws.send_str(json.dumps(protocol.FEATURE_FLAGS_HELLO))
        recorder = Recorder(name or client_id or "anon", ws)
        self.recorders.append(recorder)
        # the connect status (and feature_flags reply) arrive before anything else we do
        await recorder.wait_for(lambda m: m["type"] == ("feature_flags" if flags else "status"))
        return recorder

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            raw = await resp.read()
            if resp.content_type == "application/json":
                return resp.status, json.loads(raw)
            return resp.status, raw

    async def get(self, path: str, **kwargs: Any) -> Any:
        status, body = await self.request("GET", path, **kwargs)
        assert status == 200, (path, status, body)
        return body

    async def submit(
        self, prompt: dict[str, Any], client_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        status, answer = await self.request("POST", "/prompt", json=body)
        assert status == 200, answer
        return answer

    async def interrupt(self, prompt_id: str | None = None) -> None:
        kwargs: dict[str, Any] = {"json": {"prompt_id": prompt_id}} if prompt_id else {}
        status, _ = await self.request("POST", "/interrupt", **kwargs)
        assert status == 200

    async def wait_done(self, *prompt_ids: str, timeout: float = 15) -> dict[str, Any]:
        """Until every prompt has a history entry and the queue is empty; then let frames land."""
        deadline = time.monotonic() + timeout
        while True:
            history = await self.get("/history")
            queue = await self.get("/queue")
            idle = not queue["queue_running"] and not queue["queue_pending"]
            if idle and all(p in history for p in prompt_ids):
                break
            assert time.monotonic() < deadline, f"prompts {prompt_ids} did not finish"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # frames queued with the history entry are still on the wire
        return history

    async def timeline_has(self, prompt_id: str, value: float, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not any(
            e["value"] == value for e in await self.get(f"/sim/timeline?prompt_id={prompt_id}")
        ):
            assert time.monotonic() < deadline, f"progress {value} of {prompt_id} never sent"
            await asyncio.sleep(0.002)


StartSim = Callable[..., Awaitable[Sim]]
