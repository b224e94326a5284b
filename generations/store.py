"""Where a generation's latest state and preview live in Redis, and how to read them back.

The monitor writes (through ``publisher.py``); the consumer and the HTTP views read.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any, cast

import redis
import redis.asyncio as aredis
from django.conf import settings

from generations import messages as m


def state_key(generation_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:gen:{generation_id}:state"


def log_key(generation_id: str) -> str:
    """The generation's recent messages, oldest first (bounded; for resume)."""
    return f"{settings.REDIS_PREFIX}:gen:{generation_id}:log"


def preview_key(generation_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:gen:{generation_id}:preview"


_sync_client: redis.Redis | None = None
# redis.asyncio pools belong to the loop that made them: one client per event loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
    weakref.WeakKeyDictionary()
)


_fake_server: Any = None


def _embedded_server() -> Any:
    """Embedded mode's in-process Redis, shared by the sync and async clients."""
    global _fake_server
    if _fake_server is None:
        import fakeredis

        _fake_server = fakeredis.FakeServer()
    return _fake_server


def sync_redis() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        if settings.EMBEDDED:
            import fakeredis

            _sync_client = fakeredis.FakeRedis(server=_embedded_server())
        else:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return _sync_client


def async_redis() -> aredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        if settings.EMBEDDED:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=_embedded_server())
        else:
            # Sized for bursts of hundreds of connects (snapshots read state concurrently).
            client = aredis.Redis.from_url(
                settings.REDIS_URL, health_check_interval=30, max_connections=200
            )
        _async_clients[loop] = client
    return client


def parse_state(raw: bytes | str | None) -> m.Message | None:
    if not raw:
        return None
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return None
    return cast(m.Message, value) if isinstance(value, dict) and "seq" in value else None


async def read_state(generation_id: str) -> m.Message | None:
    return parse_state(await async_redis().get(state_key(generation_id)))


async def read_log(generation_id: str) -> list[tuple[int, str]]:
    """(seq, text) of every message still in the generation's log, in order."""
    found = []
    for raw in await async_redis().lrange(log_key(generation_id), 0, -1):
        message = parse_state(raw)
        if message is not None:
            found.append((message["seq"], raw.decode() if isinstance(raw, bytes) else raw))
    return found


def read_state_sync(generation_id: str) -> m.Message | None:
    return parse_state(sync_redis().get(state_key(generation_id)))


def read_preview_sync(generation_id: str) -> tuple[bytes, str] | None:
    found = sync_redis().hgetall(preview_key(generation_id))
    if not found or b"image" not in found:
        return None
    image, kind = found[b"image"], found.get(b"content_type", b"image/jpeg")
    image = image if isinstance(image, bytes) else image.encode()
    return image, kind.decode() if isinstance(kind, bytes) else str(kind)


def forget_sync(generation_id: str) -> None:
    """Remove a deleted generation's state and preview."""
    sync_redis().delete(
        state_key(generation_id), preview_key(generation_id), log_key(generation_id)
    )


def heartbeat_key(comfy_url: str) -> str:
    return f"{settings.REDIS_PREFIX}:monitor:{comfy_url}:heartbeat"


def server_key(comfy_url: str) -> str:
    """What the monitor learned of its server (version, jobs API, previews), as JSON."""
    return f"{settings.REDIS_PREFIX}:monitor:{comfy_url}:server"
