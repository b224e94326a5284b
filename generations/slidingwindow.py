"""Sliding-window counting in Redis: one sorted set per key, scored by time.

Used for the creation rate limit (each creation an entry), failed logins, and open sockets
(each socket an entry whose score its process's heartbeat keeps fresh, so the sockets of a
crashed process fall out of the window on their own). A fixed window would let twice the
limit through across its boundary; a sorted set counts exactly the last ``window`` seconds.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError, ResponseError


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    count: int  # entries in the window, this one included when admitted
    retry_after: int  # seconds until the oldest entry leaves the window (0 when admitted)


def entry_id() -> str:
    """A member for an event that is not otherwise named (a creation, a failure)."""
    return f"{time.time():.6f}:{uuid.uuid4().hex[:8]}"


def _queue(pipe: Any, key: str, member: str, now: float, window: float) -> None:
    pipe.zremrangebyscore(key, "-inf", now - window)
    pipe.zadd(key, {member: now})
    pipe.zcard(key)
    pipe.zrange(key, 0, 0, withscores=True)
    pipe.expire(key, math.ceil(window) + 1)


def _verdict(results: list[Any], limit: int, now: float, window: float) -> Verdict:
    count, oldest = results[2], results[3]
    if count <= limit:
        return Verdict(True, count, 0)
    first = oldest[0][1] if oldest else now
    return Verdict(False, count - 1, max(1, math.ceil(first + window - now)))


def admit(
    client: Any, key: str, member: str, limit: int, window: float, now: float | None = None
) -> Verdict:
    """Add ``member`` at ``now`` if fewer than ``limit`` entries are in the last ``window``.

    Add-then-count in one transaction: two callers racing for the last place cannot both
    get it; the one refused removes its entry again, so refusals are never counted.
    """
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=True)
    _queue(pipe, key, member, now, window)
    verdict = _verdict(pipe.execute(), limit, now, window)
    if not verdict.admitted:
        client.zrem(key, member)
    return verdict


# ``admit`` as one Redis script: one round trip and one command for the client to build and
# parse, instead of a transaction of five (a socket's place is taken on every connect). A
# refused entry is never added, so it need not be removed again.
_ADMIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local first = oldest[2] and tonumber(oldest[2]) or now
  return {0, count, math.max(1, math.ceil(first + window - now))}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, count + 1, 0}
"""
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()
# Clients without scripting (fakeredis without Lua, the embedded mode): the transaction.
_no_scripts: weakref.WeakSet[Any] = weakref.WeakSet()


async def admit_async(
    client: Any, key: str, member: str, limit: int, window: float, now: float | None = None
) -> Verdict:
    """``admit`` with an asyncio Redis client, as one script where Redis runs them."""
    now = time.time() if now is None else now
    if client not in _no_scripts:
        args = (repr(now), repr(float(window)), limit, member, math.ceil(window) + 1)
        try:
            try:
                admitted, count, retry = await client.evalsha(_ADMIT_SHA, 1, key, *args)
            except NoScriptError:  # not loaded yet (or Redis restarted): send it whole
                admitted, count, retry = await client.eval(_ADMIT, 1, key, *args)
            return Verdict(bool(admitted), int(count), int(retry))
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            _no_scripts.add(client)
    return await _admit_by_transaction(client, key, member, limit, window, now)


async def _admit_by_transaction(
    client: Any, key: str, member: str, limit: int, window: float, now: float
) -> Verdict:
    pipe = client.pipeline(transaction=True)
    _queue(pipe, key, member, now, window)
    verdict = _verdict(await pipe.execute(), limit, now, window)
    if not verdict.admitted:
        await client.zrem(key, member)
    return verdict


def record(client: Any, key: str, window: float, now: float | None = None) -> int:
    """Add one event; how many are in the last ``window`` seconds, this one included."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=True)
    _queue(pipe, key, entry_id(), now, window)
    return int(pipe.execute()[2])
