"""The secured stack for the SSE tests (small resume log, quick keep-alive comments)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from django.conf import settings

from generations.models import ApiToken
from tests.support.stack import Stack, build_stack, stop_stack

SSE_ENV = {
    "LOCKNGEN_REQUIRE_AUTH": "true",
    "LOCKNGEN_LOG_LENGTH": "12",
    "LOCKNGEN_SSE_KEEPALIVE_SECONDS": "1",
    "LOCKNGEN_MAX_SOCKETS_PER_USER": "3",
    "LOCKNGEN_SOCKET_HEARTBEAT_SECONDS": "1",
    "LOCKNGEN_ACCESS_RECHECK_SECONDS": "600",  # the broadcast ends streams, not the safety net
}


@pytest.fixture(scope="package")
def sse_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    stack = build_stack(tmp_path_factory.mktemp("sse"), **SSE_ENV)
    try:
        yield stack
    finally:
        stop_stack(stack)


@dataclass
class Person:
    user: object
    token: str
    token_id: int


@pytest.fixture
def people(sse_stack, transactional_db, django_user_model, request) -> Iterator[dict[str, Person]]:
    requests.post(f"{sse_stack.sim_url}/sim/reset", timeout=5)
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:sockets:*"):
        client.delete(key)  # user ids are reused after each test's flush
    found = {}
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(name)
        token, raw = ApiToken.issue(user)
        found[name] = Person(user, raw, token.id)
    yield found
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(sse_stack.logs())
