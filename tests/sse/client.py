"""A Server-Sent Events client over a real HTTP connection (aiohttp), and a parser."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp


class EventStream:
    """Reads ``text/event-stream``: every event (id, event, data as JSON) and comment."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.events: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.content_type = ""
        self.ended = False
        self._changed = asyncio.Event()

    async def __aenter__(self) -> EventStream:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._response = await self._session.get(self.url, headers=self.headers)
        self.status = self._response.status
        self.content_type = self._response.headers.get("Content-Type", "")
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        self._response.close()
        await self._session.close()

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in self._response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line == "":
                    if fields:
                        self.events.append(_event(fields))
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                self._changed.set()
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        self.ended = True
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.ended:
                raise AssertionError(f"stream ended: {self.events[-3:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last events: {self.events[-3:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                pass

    async def until_ended(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ended:
            assert time.monotonic() < deadline, f"still open: {self.events[-3:]}"
            await asyncio.sleep(0.05)

    def messages(self) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e.get("event") != "error"]


def _event(fields: dict[str, str]) -> dict[str, Any]:
    data = fields.get("data", "")
    return {"id": fields.get("id"), "event": fields.get("event"), "data": json.loads(data)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
