"""API calls of the webhook tests."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from generations.status import TERMINAL_STATUSES
from tests.integration.clients import slow_noise
from tests.webhooks.receiver import Received


def call(web: str, token: str | None, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, web + path, headers=headers, timeout=15, **kwargs)


def make_hook(web: str, token: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    answer = call(web, token, "POST", "/api/webhooks", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def start(web: str, token: str, steps: int = 4, seconds: float = 0.05, seed: int = 1) -> str:
    body = {"workflow": slow_noise(steps=steps, seconds=seconds, seed=seed)}
    answer = call(web, token, "POST", "/api/generations", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def wait_finished(web: str, token: str, generation_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = call(web, token, "GET", f"/api/generations/{generation_id}").json()
        if row["status"] in TERMINAL_STATUSES:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{generation_id} did not finish")


def bodies(received: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in received]


def answered(received: list[Received]) -> list[dict[str, Any]]:
    """The events the endpoint accepted (2xx), in arrival order."""
    return [json.loads(r.body) for r in received if r.answered and 200 <= r.answered < 300]


def attempts(web: str, token: str, hook_id: str, count: int, timeout: float = 10) -> list[dict]:
    """The webhook's recorded attempts, once there are ``count`` (the sender records each
    just after the endpoint answered it), oldest first per event."""
    deadline = time.monotonic() + timeout
    while True:
        rows = call(web, token, "GET", f"/api/webhooks/{hook_id}/deliveries").json()["results"]
        if len(rows) >= count or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: (r["seq"] or 0, r["attempt"]))
        time.sleep(0.1)
