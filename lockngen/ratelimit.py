"""Per-user limit on creating generations: a fixed window counted in Redis."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from progress.store import sync_redis

log = logging.getLogger("lockngen.ratelimit")


def retry_after(caller: str) -> int | None:
    """Count one creation for ``caller``; seconds to wait when over the limit, else None."""
    limit = settings.LOCKNGEN["RATE_LIMIT_COUNT"]
    window = settings.LOCKNGEN["RATE_LIMIT_WINDOW"]
    if limit <= 0:
        return None
    now = time.time()
    start = int(now // window) * window
    key = f"{settings.REDIS_PREFIX}:rate:{caller}:{start}"
    try:
        pipe = sync_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        # Failing open: a Redis hiccup must not stop everyone from working.
        log.warning("rate limit not checked: %s", exc)
        return None
    if count <= limit:
        return None
    return max(1, int(start + window - now) + 1)
