"""``/api/ws/progress[?generationId=<uuid>]``: live generation messages for browsers."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from progress import messages as m
from progress.groups import firehose_group, generation_group
from progress.snapshots import active_snapshots, generation_exists, snapshot_for

log = logging.getLogger("lockngen.consumer")

# Close codes (4000-4999 are the application's own).
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_LAYER_DOWN = 4503  # the channel layer failed: reconnect and try again
RELAYED_TYPES = frozenset(m.LIVE_TYPES)


class ProgressConsumer(AsyncWebsocketConsumer):
    """Joins one generation's group (or the firehose), snapshots, then forwards live.

    Channels runs this consumer's handlers one at a time, so the snapshot sent from
    ``connect`` always precedes the group messages queued meanwhile; ``last_seq`` drops
    those the snapshot already covers.
    """

    groups_joined: list[str]
    last_seq: dict[str, int]

    async def connect(self) -> None:
        self.groups_joined, self.last_seq = [], {}
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        wanted = query.get("generationId")
        try:
            if wanted is None:
                await self._watch_all()
            else:
                await self._watch_one(wanted[-1])
        except Exception:
            log.exception("cannot subscribe a progress socket")
            await self.close(code=CLOSE_LAYER_DOWN)

    async def _watch_one(self, raw_id: str) -> None:
        try:
            generation_id = str(uuid.UUID(raw_id))
        except ValueError:
            await self.send_error(f"generationId {raw_id[:64]!r} is not a UUID")
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        if not await database_sync_to_async(generation_exists)(generation_id):
            await self.send_error(f"no generation {generation_id}")
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self._join(generation_group(generation_id))
        snapshot = await snapshot_for(generation_id)
        if snapshot is not None:
            await self._send_snapshot(snapshot)

    async def _watch_all(self) -> None:
        await self._join(firehose_group())
        for snapshot in await active_snapshots():
            await self._send_snapshot(snapshot)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def _send_snapshot(self, snapshot: m.Message) -> None:
        self.last_seq[snapshot["generationId"]] = snapshot["seq"]
        await self.send(text_data=m.dumps(snapshot))

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # noqa: BLE001 - the layer is gone; nothing left to leave
                log.warning("group_discard failed for %s", group)

    # ------------------------------------------------------------------ client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_error("binary frames are not accepted; send JSON text")
            return
        limit = settings.LOCKNGEN["MAX_CLIENT_FRAME"]
        if len(text_data) > limit:
            await self.send_error(f"frame too large ({len(text_data)} > {limit} characters)")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("frame is not valid JSON")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            await self.send(text_data='{"type":"pong"}')
        elif not isinstance(kind, str):
            await self.send_error('frame must be a JSON object with a string "type"')
        else:
            await self.send_error(f"unknown message type {kind[:64]!r}")

    async def send_error(self, error: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": error}))

    # ------------------------------------------------------------------ group messages

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections in a worker thread before every
        # handler: a thread hop per message per socket, most of the relay's CPU when
        # profiled (bench/relay.py). Relaying touches no database, so it skips that.
        if message.get("type") in RELAYED_TYPES:
            await self.forward(message)
        else:
            await super().dispatch(message)

    async def forward(self, event: dict[str, Any]) -> None:
        generation_id, seq = event["generation_id"], event["seq"]
        if seq <= self.last_seq.get(generation_id, 0):
            return  # covered by the snapshot (or a duplicate)
        if event["type"] in m.TERMINAL_TYPES:
            self.last_seq.pop(generation_id, None)  # bounded: finished ones are forgotten
        else:
            self.last_seq[generation_id] = seq
        await self.send(text_data=event["text"])

    generation_queued = forward
    generation_started = forward
    generation_progress = forward
    generation_completed = forward
    generation_failed = forward
    generation_cancelled = forward
