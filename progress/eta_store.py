"""The learned ETA model of each backend, kept in a Redis hash.

Redis rather than a table: the monitor already holds a Redis client, a finished prompt
rewrites only the few keys it taught (one ``HSET``), and no migration is needed. What is kept
is a cache of what was learned, not a record: if Redis loses it (or on a new install), the
model starts from nothing and learns again, without errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import RedisError

from progress.eta import EtaModel

log = logging.getLogger("lockngen.monitor")


def model_key(comfy_url: str) -> str:
    return f"{settings.REDIS_PREFIX}:eta:{comfy_url.rstrip('/')}"


async def load(client: aredis.Redis, comfy_url: str) -> EtaModel:
    try:
        raw = await client.hgetall(model_key(comfy_url))
    except RedisError as exc:
        log.warning("cannot load the learned ETA model (%s): starting from nothing", exc)
        return EtaModel()
    fields = {_text(k): _text(v) for k, v in raw.items()}
    model = EtaModel.from_fields(fields)
    log.info("ETA model of %s: %d learned node keys", comfy_url, len(model.stats))
    return model


async def save(client: aredis.Redis, comfy_url: str, model: EtaModel, keys: Iterable[str]) -> None:
    try:
        # redis-py's Mapping parameter is invariant in its key type: a dict[str, str] is fine.
        fields = model.to_fields(keys)
        await client.hset(model_key(comfy_url), mapping=fields)  # type: ignore[arg-type]
    except RedisError as exc:  # kept in memory; the next finished prompt writes again
        log.warning("cannot save the learned ETA model: %s", exc)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
