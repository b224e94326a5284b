"""The only code that writes to the channel layer and to a generation's Redis state."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextvars import ContextVar
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from generations import messages as m
from generations.store import (
    heartbeat_key,
    log_key,
    parse_state,
    preview_key,
    server_key,
    state_key,
)
from progress import metrics
from progress.events import layer_event
from progress.groups import firehose_group, generation_group

log = logging.getLogger("lockngen.publisher")
MAX_RETRY_DELAY = 2.0
# When the monitor received the ComfyUI frame being handled (epoch seconds); None for work
# no frame caused (ticks, reconciliation): then the publish time stands in.
FRAME_RECEIVED_AT: ContextVar[float | None] = ContextVar("frame_received_at", default=None)


class Publisher:
    """Long-lived: one channel layer and one Redis client for the monitor's whole life."""

    def __init__(
        self,
        layer: Any,
        redis: aredis.Redis,
        *,
        state_ttl: int,
        preview_ttl: int,
        log_length: int = 500,
    ) -> None:
        self.layer = layer
        self.redis = redis
        self.state_ttl = state_ttl
        self.preview_ttl = preview_ttl
        self.log_length = log_length
        self.stopping = asyncio.Event()  # ends the retries when the monitor stops

    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        """Record the message (latest state, and the bounded log for resume), then fan it out.

        Redis being away does not lose the message: it is retried until Redis is back,
        holding the monitor's frames (ComfyUI's keep arriving in its queue meanwhile).
        """
        event = layer_event(message, owner_id, FRAME_RECEIVED_AT.get() or time.time())
        generation_id = event["generation_id"]
        await self._retrying(self._record, generation_id, event["text"])
        await self._retrying(self.layer.group_send, generation_group(generation_id), event)
        await self._retrying(self.layer.group_send, firehose_group(), event)
        metrics.message_published(message)

    async def _record(self, generation_id: str, text: str) -> None:
        key = log_key(generation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(state_key(generation_id), text, ex=self.state_ttl)
            pipe.rpush(key, text)
            pipe.ltrim(key, -self.log_length, -1)
            pipe.expire(key, self.state_ttl)
            await pipe.execute()

    async def _retrying(self, call: Any, *args: Any) -> None:
        delay = 0.1
        while True:
            try:
                await call(*args)
                return
            except (RedisError, OSError) as exc:
                if self.stopping.is_set():
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def store_preview(self, generation_id: str, content_type: str, image: bytes) -> None:
        key = preview_key(generation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"content_type": content_type, "image": image})
            pipe.expire(key, self.preview_ttl)
            await pipe.execute()

    async def last_message(self, generation_id: str) -> m.Message | None:
        """The last message published for a generation, as Redis remembers it."""
        return parse_state(await self.redis.get(state_key(generation_id)))

    async def describe_server(self, comfy_url: str, facts: dict[str, Any]) -> None:
        """For ``monitor_health``: what the monitor knows of the server it talks to."""
        await self.redis.set(server_key(comfy_url), json.dumps(facts), ex=self.state_ttl)

    async def heartbeat(self, comfy_url: str, connected: bool, ttl: int) -> None:
        """For health checks: the monitor is alive, and whether ComfyUI's socket is open."""
        await self.redis.set(
            heartbeat_key(comfy_url), b"connected" if connected else b"down", ex=ttl
        )
