"""The secured stack with two daphne processes on one Redis (and an open-install daphne)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from generations.models import ApiToken
from tests.security.helpers import Web
from tests.support.procs import Proc, wait_for_port
from tests.support.stack import Stack, build_stack, start_daphne, stop_stack

SECURED_ENV = {
    "LOCKNGEN_REQUIRE_AUTH": "true",
    "LOCKNGEN_MAX_SOCKETS_PER_USER": "5",
    "LOCKNGEN_MAX_ACTIVE_PER_USER": "3",
    "LOCKNGEN_SOCKET_HEARTBEAT_SECONDS": "1",
    # Long, so the revocation tests see the broadcast at work, not the safety net.
    "LOCKNGEN_ACCESS_RECHECK_SECONDS": "600",
}
OPEN_ENV = {
    "LOCKNGEN_REQUIRE_AUTH": "false",
    "LOCKNGEN_MAX_SOCKETS_PER_IP": "3",
    "LOCKNGEN_RATE_LIMIT_COUNT": "3",
    "LOCKNGEN_RATE_LIMIT_WINDOW": "4",
}


@dataclass
class Pair:
    stack: Stack
    a: Web
    b: Web
    b_proc: Proc
    open_web: Web  # LOCKNGEN_REQUIRE_AUTH=false, same database and simulator

    def kill_b(self) -> None:
        os.killpg(self.b_proc.popen.pid, signal.SIGKILL)
        self.b_proc.popen.wait(5)

    def restart_b(self) -> None:
        self.b_proc = Proc(self.b_proc.name, self.b_proc.args, self.stack.log_dir, self.b_proc.env)
        self.b_proc.start()
        wait_for_port(int(self.b.http.rsplit(":", 1)[1]), proc=self.b_proc)


def _web(port: int) -> Web:
    return Web(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")


@pytest.fixture(scope="package")
def pair(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Pair]:
    log_dir = tmp_path_factory.mktemp("security")
    stack = build_stack(log_dir, **SECURED_ENV)
    procs: list[Proc] = []
    try:
        b_proc, b_port = start_daphne(log_dir, stack.env, name="daphne-b")
        procs.append(b_proc)
        open_proc, open_port = start_daphne(log_dir, {**stack.env, **OPEN_ENV}, name="open")
        procs.append(open_proc)
        a_port = int(stack.web_url.rsplit(":", 1)[1])
        found = Pair(stack, _web(a_port), _web(b_port), b_proc, _web(open_port))
        yield found
        procs[0] = found.b_proc
    finally:
        for proc in procs:
            proc.stop()
        stop_stack(stack)


# The test settings hash with MD5 (fast), which the daphne processes (the product's settings)
# do not accept: the password is stored as PBKDF2, with few iterations (daphne upgrades it
# at the first good login, as Django does).
WEB_PASSWORD = "pw-long-enough-1"
WEB_PASSWORD_HASH = PBKDF2PasswordHasher().encode(WEB_PASSWORD, "securitytests", 1000)


@dataclass
class Person:
    user: object
    token: str
    token_id: int
    password: str = WEB_PASSWORD


@pytest.fixture
def people(pair, transactional_db, django_user_model, request) -> Iterator[dict[str, Person]]:
    requests.post(f"{pair.stack.sim_url}/sim/reset", timeout=5)
    # User ids are reused after each test's flush: start with no counters of earlier tests.
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("rate", "login", "sockets"):
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:{pattern}:*"):
            client.delete(key)
    found = {}
    for name, staff in (("alice", False), ("bob", False), ("root", True)):
        user = django_user_model.objects.create_user(name, is_staff=staff)
        user.password = WEB_PASSWORD_HASH
        user.save()
        token, raw = ApiToken.issue(user)
        found[name] = Person(user, raw, token.id)
    yield found
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(pair.stack.logs(), f"--- daphne-b\n{pair.b_proc.tail()}")
