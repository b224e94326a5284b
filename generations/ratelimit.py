"""Per-user limit on creating generations: a sliding window counted in Redis."""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from generations.slidingwindow import admit, entry_id
from generations.store import sync_redis

log = logging.getLogger("lockngen.ratelimit")


def retry_after(caller: str) -> int | None:
    """Count one creation for ``caller``; seconds to wait when over the limit, else None.

    Any ``RATE_LIMIT_WINDOW`` seconds hold at most ``RATE_LIMIT_COUNT`` creations (no burst
    of twice the limit across a window boundary); refused attempts are not counted.
    """
    limit = settings.LOCKNGEN["RATE_LIMIT_COUNT"]
    window = settings.LOCKNGEN["RATE_LIMIT_WINDOW"]
    if limit <= 0:
        return None
    key = f"{settings.REDIS_PREFIX}:rate:{caller}"
    try:
        verdict = admit(sync_redis(), key, entry_id(), limit, window)
    except redis.RedisError as exc:
        # Failing open: a Redis hiccup must not stop everyone from working.
        log.warning("rate limit not checked: %s", exc)
        return None
    return None if verdict.admitted else verdict.retry_after
