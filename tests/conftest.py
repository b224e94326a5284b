"""Fixtures for every test: the run's own Redis keys are removed at the end, nobody else's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def _own_redis_keys() -> Iterator[None]:
    yield
    try:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}*", count=500):
            client.delete(key)
    except redis.RedisError:
        pass  # the unit tests do not need Redis
