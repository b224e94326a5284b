"""The only code that writes to the channel layer and to a generation's Redis state."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis

from progress import messages as m
from progress.groups import firehose_group, generation_group
from progress.store import heartbeat_key, parse_state, preview_key, state_key


class Publisher:
    """Long-lived: one channel layer and one Redis client for the monitor's whole life."""

    def __init__(
        self, layer: Any, redis: aredis.Redis, *, state_ttl: int, preview_ttl: int
    ) -> None:
        self.layer = layer
        self.redis = redis
        self.state_ttl = state_ttl
        self.preview_ttl = preview_ttl

    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        """Record the message as the generation's latest state, then fan it out."""
        generation_id = message["generationId"]
        text = m.dumps(message)
        await self.redis.set(state_key(generation_id), text, ex=self.state_ttl)
        event = {
            "type": message["type"],
            "generation_id": generation_id,
            "seq": message["seq"],
            "owner_id": owner_id,
            # Serialised once here, not once per watching socket.
            "text": text,
        }
        await self.layer.group_send(generation_group(generation_id), event)
        await self.layer.group_send(firehose_group(), event)

    async def store_preview(self, generation_id: str, content_type: str, image: bytes) -> None:
        key = preview_key(generation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"content_type": content_type, "image": image})
            pipe.expire(key, self.preview_ttl)
            await pipe.execute()

    async def last_message(self, generation_id: str) -> m.Message | None:
        """The last message published for a generation, as Redis remembers it."""
        return parse_state(await self.redis.get(state_key(generation_id)))

    async def heartbeat(self, comfy_url: str, connected: bool, ttl: int) -> None:
        """For health checks: the monitor is alive, and whether ComfyUI's socket is open."""
        await self.redis.set(
            heartbeat_key(comfy_url), b"connected" if connected else b"down", ex=ttl
        )
