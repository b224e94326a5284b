"""The only code that writes to the channel layer and to a generation's Redis state.

With the pub/sub layer on our own Redis (the default), a message's record and its
publication to both of its groups are one transaction; with any other layer, the record,
then the layer's ``group_send`` per group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, cast

import redis.asyncio as aredis
from channels_redis.pubsub import RedisPubSubChannelLayer
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
from progress.events import LayerEvent, layer_event
from progress.groups import firehose_group, generation_group

log = logging.getLogger("lockngen.publisher")
MAX_RETRY_DELAY = 2.0
# When the monitor received the ComfyUI frame being handled (epoch seconds); None for work
# no frame caused (ticks, reconciliation): then the publish time stands in.
FRAME_RECEIVED_AT: ContextVar[float | None] = ContextVar("frame_received_at", default=None)


def group_channels(layer: Any) -> Callable[[str], str] | None:
    """How the pub/sub layer names a group's Redis channel (its own function, so the names
    cannot drift), or None for any other layer (in-memory: embedded mode, unit tests).

    Publishing through it directly lets a message be recorded and published in one Redis
    transaction: one round trip instead of three one after the other, which were most of
    the relay's added latency on an idle machine (each ~0.5 ms, the wake-up included).
    """
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    loop_layer = layer._get_layer()  # the running loop's: the publisher lives in it
    return cast(Callable[[str], str], loop_layer._get_group_channel_name)


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
        same_redis: bool = False,
    ) -> None:
        self.layer = layer
        self.redis = redis
        self.state_ttl = state_ttl
        self.preview_ttl = preview_ttl
        self.log_length = log_length
        self.stopping = asyncio.Event()  # ends the retries when the monitor stops
        self.group_channel = group_channels(layer) if same_redis else None

    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        """Record the message (latest state, and the bounded log for resume), then fan it out.

        Redis being away does not lose the message: it is retried until Redis is back,
        holding the monitor's frames (ComfyUI's keep arriving in its queue meanwhile).
        """
        event = layer_event(message, owner_id, FRAME_RECEIVED_AT.get() or time.time())
        generation_id = event["generation_id"]
        groups = (generation_group(generation_id), firehose_group())
        if self.group_channel is not None:
            await self._retrying(self._record, event, groups)
        else:
            await self._retrying(self._record, event, ())
            for group in groups:
                await self._retrying(self.layer.group_send, group, event)
        metrics.message_published(message)

    async def _record(self, event: LayerEvent, groups: tuple[str, ...]) -> None:
        """The state and the log, and the publication to ``groups`` (none: the layer's own
        ``group_send`` follows) in the same transaction: recorded before anyone can hear of
        it, in one round trip."""
        generation_id, text = event["generation_id"], event["text"]
        key = log_key(generation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(state_key(generation_id), text, ex=self.state_ttl)
            pipe.rpush(key, text)
            pipe.ltrim(key, -self.log_length, -1)
            pipe.expire(key, self.state_ttl)
            if groups and self.group_channel is not None:
                payload = self.layer.serialize(event)
                for group in groups:
                    pipe.publish(self.group_channel(group), payload)
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
