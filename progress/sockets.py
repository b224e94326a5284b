"""This process's progress sockets: their places under the per-user/per-address caps, the
heartbeat that keeps those places alive in Redis, and the periodic access re-check.

Each open socket is an entry in a sorted set per user (or per client address for anonymous
sockets), scored by its last heartbeat. Every web process counts in the same sets, so the cap
holds across processes; a crashed process stops beating and its entries drop out of the
window after three beats, so it leaks no places.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
import weakref
from collections import defaultdict
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from redis.exceptions import RedisError

from generations.access import Identity, Viewer, check_access
from generations.slidingwindow import Verdict, admit_async
from generations.store import async_redis

log = logging.getLogger("lockngen.sockets")
PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Tracked(Protocol):
    identity: Identity | None

    async def apply_access(self, viewer: Viewer | None) -> bool: ...


def user_key(user_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:sockets:user:{user_id}"


def address_key(address: str) -> str:
    return f"{settings.REDIS_PREFIX}:sockets:ip:{address}"


def _heartbeat() -> float:
    return settings.LOCKNGEN["SOCKET_HEARTBEAT_SECONDS"]


class LocalSockets:
    """One per event loop (daphne has one)."""

    def __init__(self) -> None:
        self.places: dict[Tracked, tuple[str, str]] = {}  # socket -> (key, member)
        self.task: asyncio.Task[None] | None = None

    async def admit(self, socket: Tracked, key: str, limit: int) -> Verdict:
        """A place for ``socket`` under ``key``'s cap (``limit`` <= 0: no cap)."""
        if limit <= 0:
            return Verdict(True, 0, 0)
        member = f"{PROCESS}:{uuid.uuid4().hex}"
        verdict = await admit_async(async_redis(), key, member, limit, 3 * _heartbeat())
        if verdict.admitted:
            self.places[socket] = (key, member)
        self._ensure_running()
        return verdict

    def track(self, socket: Tracked) -> None:
        """Re-checked periodically even without a counted place (no cap configured)."""
        self.places.setdefault(socket, ("", ""))
        self._ensure_running()

    async def release(self, socket: Tracked) -> None:
        key, member = self.places.pop(socket, ("", ""))
        if not key:
            return
        try:
            await async_redis().zrem(key, member)
        except (RedisError, OSError) as exc:  # it expires after three missed beats anyway
            log.warning("socket place not released: %s", exc)

    def _ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        beat, recheck = _heartbeat(), settings.LOCKNGEN["ACCESS_RECHECK_SECONDS"]
        since_check = 0.0
        while self.places:
            await asyncio.sleep(beat)
            since_check += beat
            try:
                await self._beat()
                if recheck > 0 and since_check >= recheck:
                    since_check = 0.0
                    await self._recheck_all()
            except Exception:  # the loop must survive a Redis or database hiccup
                log.exception("socket heartbeat or access re-check failed")

    async def _beat(self) -> None:
        wall = time.time()  # the scores are wall-clock: every process compares them
        pipe = async_redis().pipeline(transaction=False)
        keys = set()
        for key, member in list(self.places.values()):
            if key:
                pipe.zadd(key, {member: wall}, xx=True)
                keys.add(key)
        for key in keys:
            pipe.expire(key, int(3 * _heartbeat()) + 1)
        if keys:
            await pipe.execute()

    async def _recheck_all(self) -> None:
        """The safety net: changes that sent no signal (a bulk UPDATE, a session expiring)."""
        by_identity: dict[Identity | None, list[Tracked]] = defaultdict(list)
        for socket in list(self.places):
            by_identity[socket.identity].append(socket)
        for identity, sockets in by_identity.items():
            viewer = await database_sync_to_async(check_access)(identity)
            for socket in sockets:
                await socket.apply_access(viewer)


_instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalSockets] = (
    weakref.WeakKeyDictionary()
)


def local_sockets() -> LocalSockets:
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is None:
        instance = _instances[loop] = LocalSockets()
    return instance


def cap_for(viewer_id: int | None, address: str | None) -> tuple[str, int, str] | None:
    """The set a new socket counts in, its cap, and how the error names it."""
    conf: dict[str, Any] = settings.LOCKNGEN
    if viewer_id is not None:
        return user_key(viewer_id), conf["MAX_SOCKETS_PER_USER"], "per user"
    if address:
        return address_key(address), conf["MAX_SOCKETS_PER_IP"], "per address"
    return None
