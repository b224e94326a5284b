"""Fixtures for every test: the run's own Redis keys are removed at the end, nobody else's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from hypothesis import settings as hypothesis_settings

# No per-example deadline: the suite shares 2 cores with its own processes, and a slow example
# is not a wrong one (speed is measured in bench/, not in tests).
hypothesis_settings.register_profile("lockngen", deadline=None)
hypothesis_settings.load_profile("lockngen")


@pytest.fixture(scope="session", autouse=True)
def _own_redis_keys() -> Iterator[None]:
    yield
    try:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}*", count=500):
            client.delete(key)
    except redis.RedisError:
        pass  # the unit tests do not need Redis


@pytest.fixture(scope="session", autouse=True)
def _release_test_database(django_db_setup, django_db_blocker) -> Iterator[None]:
    """PostgreSQL will not drop a database in use: end the sessions that threads left open."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each test's outcome on it, so fixtures can print process logs on failure."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
