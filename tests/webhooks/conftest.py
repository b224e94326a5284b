"""The real stack with accounts, a webhook sender process, and a receiver per test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from generations.models import ApiToken, WebhookDelivery
from lockngen import launcher
from tests.support.procs import Proc
from tests.support.stack import Stack, build_stack, stop_stack
from tests.webhooks.receiver import Receiver

HOOK_ENV = {
    "LOCKNGEN_REQUIRE_AUTH": "true",
    "LOCKNGEN_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    "LOCKNGEN_WEBHOOK_TIMEOUT_SECONDS": "1.5",
    "LOCKNGEN_WEBHOOK_RETRY_DELAYS": "0.3,0.6,1",
    "LOCKNGEN_WEBHOOK_RETRY_FOR_SECONDS": "600",
    "LOCKNGEN_WEBHOOK_LEASE_SECONDS": "4",  # the sender makes it timeout + 5 = 6.5 s
}


@dataclass
class HookStack:
    stack: Stack
    sender: Proc
    started: int = 0

    def start_sender(self) -> Proc:
        self.started += 1  # a log of its own each time: the wait below reads only its own
        name = f"sender-{self.started}"
        self.sender = Proc(
            name, launcher.webhook_sender(), self.stack.log_dir, self.stack.env
        ).start()
        self.sender.wait_for_log("webhook sender started")
        return self.sender


# Module scope: its sender must be gone before the outbox tests claim deliveries themselves.
@pytest.fixture(scope="module")
def hooks(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[HookStack]:
    stack = build_stack(tmp_path_factory.mktemp("webhooks"), **HOOK_ENV)
    found = HookStack(stack, None)  # type: ignore[arg-type]
    try:
        found.start_sender()
        yield found
    finally:
        if found.sender is not None:
            found.sender.stop()
        stop_stack(stack)


@dataclass
class Person:
    user: object
    token: str


@pytest.fixture
def people(hooks, transactional_db, django_user_model, request) -> Iterator[dict[str, Person]]:
    requests.post(f"{hooks.stack.sim_url}/sim/reset", timeout=5)
    found = {}
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(name)
        found[name] = Person(user, ApiToken.issue(user)[1])
    yield found
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(hooks.stack.logs(), f"--- sender\n{hooks.sender.tail()}")
        print("--- outbox", list(WebhookDelivery.objects.values()), time.time())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    try:
        yield found
    finally:
        found.stop()
