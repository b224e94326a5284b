"""WebSocket registry and the single FIFO send loop (ComfyUI's ``sockets`` + ``publish_loop``).

Routing follows PROTOCOL.md §1: a frame addressed to a sid goes to the socket currently
registered under that sid, or nowhere; ``None`` means every socket. Because one task sends every
frame, text/binary ordering is exactly the order in which frames were queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from comfyui import protocol

log = logging.getLogger("lockngen.simulator")


@dataclass(eq=False)
class Connection:
    """One accepted WebSocket; ``flags`` are what its first message negotiated."""

    sid: str
    ws: web.WebSocketResponse
    request: web.BaseRequest
    flags: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


# A sid, one Connection, or None for every socket. A prompt's client_id is whatever was posted,
# so anything else is accepted too (and matches no socket).
Target = Any


@dataclass
class Outgoing:
    payload: str | bytes
    target: Target
    progress: dict[str, Any] | None = None  # set for `progress` frames: recorded in the timeline


class Timeline:
    """When each progress frame left the server, for the last ``limit`` prompts."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._prompts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def record(self, prompt_id: str, entry: dict[str, Any]) -> None:
        entries = self._prompts.get(prompt_id)
        if entries is None:
            entries = self._prompts[prompt_id] = []
            while len(self._prompts) > self.limit:
                self._prompts.popitem(last=False)
        entries.append(entry)

    def get(self, prompt_id: str) -> list[dict[str, Any]]:
        return list(self._prompts.get(prompt_id, []))

    def clear(self) -> None:
        self._prompts.clear()


class Hub:
    """Socket table + outbox. All methods run on the event loop; sends never raise."""

    def __init__(self, timeline_prompts: int) -> None:
        self.sockets: dict[str, Connection] = {}
        self.connections: set[Connection] = set()  # every open socket, registered or replaced
        self.timeline = Timeline(timeline_prompts)
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue()

    # ----------------------------------------------------------------------- registry

    def register(self, conn: Connection) -> None:
        """Take over ``conn.sid``: a previous socket with that sid is dropped, not closed."""
        self.connections.add(conn)
        self.sockets[conn.sid] = conn

    def unregister(self, conn: Connection) -> None:
        """Like ComfyUI, forget the sid even if a newer socket took it over meanwhile."""
        self.connections.discard(conn)
        self.sockets.pop(conn.sid, None)
        conn.done.set()

    def supports_metadata(self, sid: object) -> bool:
        conn = self.sockets.get(sid) if isinstance(sid, str) else None
        return bool(conn and conn.flags.get("supports_preview_metadata"))

    # ----------------------------------------------------------------------- sending

    def send_json(self, kind: str, data: dict[str, Any], target: Target) -> None:
        self._outbox.put_nowait(Outgoing(protocol.encode_json(kind, data), target))

    def send_bytes(self, frame: bytes, target: Target) -> None:
        self._outbox.put_nowait(Outgoing(frame, target))

    def send_progress(self, data: dict[str, Any], target: Target) -> None:
        """A ``progress`` frame; its hand-over time goes to /sim/timeline."""
        payload = protocol.encode_json("progress", data)
        self._outbox.put_nowait(Outgoing(payload, target, progress=data))

    async def flush(self) -> None:
        """Wait until every queued frame has been handed to the sockets."""
        await self._outbox.join()

    async def run(self) -> None:
        """The publish loop: one frame at a time, in queue order."""
        while True:
            item = await self._outbox.get()
            try:
                await self._deliver(item)
            except Exception:  # the loop must outlive any single frame
                log.exception("publish loop failed on one frame")
            finally:
                self._outbox.task_done()

    async def _deliver(self, item: Outgoing) -> None:
        # Stamped before the first send: the step exists from then on, and sending it to many
        # sockets one after the other is part of how late each of them hears of it.
        handed_at = time.time()
        for conn in self._recipients(item.target):
            try:
                if isinstance(item.payload, str):
                    await conn.ws.send_str(item.payload)
                else:
                    await conn.ws.send_bytes(item.payload)
            except Exception as exc:  # noqa: BLE001 - a dead socket must not stop the loop
                log.debug("send to %s failed: %s", conn.sid, exc)
        if item.progress is not None:
            data = item.progress
            entry = {"node": data["node"], "value": data["value"], "max": data["max"]}
            entry["t"] = handed_at
            self.timeline.record(data["prompt_id"], entry)

    def _recipients(self, target: Target) -> list[Connection]:
        if target is None:
            return list(self.sockets.values())
        if isinstance(target, Connection):
            return [target] if target in self.connections else []
        # a client_id that is not a string can never match a socket's sid
        conn = self.sockets.get(target) if isinstance(target, str) else None
        return [conn] if conn is not None else []

    # ----------------------------------------------------------------------- faults / shutdown

    async def drop_all(self, timeout: float = 5.0) -> int:
        """Cut every socket without a close frame and wait until their handlers cleaned up."""
        conns = list(self.connections)
        for conn in conns:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            else:
                await conn.ws.close()
        if conns:
            waits = [asyncio.ensure_future(c.done.wait()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for task in pending:
                task.cancel()
        return len(conns)

    async def close_all(self) -> None:
        """Graceful close on shutdown (an open socket would otherwise stall runner cleanup)."""
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"server shutdown")
