"""Real WebSocket and HTTP clients for the integration tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import requests

from generations import messages as m


class Watcher:
    """A WebSocket client that records every JSON message it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.headers: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Watcher:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, autoping=True, headers=self.headers)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._changed.set()
        self.close_code = self._ws.close_code
        self._changed.set()

    async def send(self, data: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def until(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            if self.close_code is not None:
                raise AssertionError(f"socket closed ({self.close_code}): {self.messages[-3:]}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; last messages: {self.messages[-3:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
            except TimeoutError:
                pass

    def of(self, generation_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("generationId") == generation_id]

    async def until_step(self, generation_id: str, step: int, timeout: float = 30.0) -> None:
        """Until the generation has reported at least ``step`` (of its current node)."""
        await self.until(
            lambda _: any((x["data"]["step"] or 0) >= step for x in self.of(generation_id)),
            timeout,
        )

    async def until_done(self, generation_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        await self.until(
            lambda _: any(x["type"] in m.TERMINAL_TYPES for x in self.of(generation_id)), timeout
        )
        return self.of(generation_id)


def slow_noise(
    steps: int = 10, seconds: float = 0.1, seed: int = 1, fail_at: int | None = None
) -> dict[str, Any]:
    """The probe workload the traces ran: SlowNoise → (FailAt) → SaveImage."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "SlowNoise",
            "inputs": {
                "steps": steps,
                "seconds_per_step": seconds,
                "width": 64,
                "height": 64,
                "seed": seed,
            },
        },
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": "lockngen"},
        },
    }
    if fail_at is not None:
        graph["3"] = {
            "class_type": "FailAt",
            "inputs": {
                "image": ["1", 0],
                "steps": fail_at + 2,
                "fail_at_step": fail_at,
                "seconds_per_step": 0.05,
            },
        }
        graph["2"]["inputs"]["images"] = ["3", 0]
    return graph


def create(web_url: str, workflow: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{web_url}/api/generations", json={"workflow": workflow}, timeout=15)
    assert response.status_code == 201, response.text
    return response.json()


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"].removeprefix("generation.") for m in messages]


def assert_gapless(messages: list[dict[str, Any]]) -> None:
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
