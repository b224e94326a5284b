"""Accounts on the real stack: who may watch and touch which generation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
import redis
import requests
from django.conf import settings

from generations.models import ApiToken
from tests.integration.clients import Watcher, kinds, slow_noise
from tests.support.stack import Stack, secured_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def secured(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    limits = {"LOCKNGEN_RATE_LIMIT_COUNT": "3", "LOCKNGEN_RATE_LIMIT_WINDOW": "3600"}
    with secured_stack(tmp_path_factory.mktemp("secured"), **limits) as s:
        yield s


class Caller:
    """An API client of one user, with a bearer token."""

    def __init__(self, stack: Stack, user, token: str) -> None:
        self.stack, self.user, self.token = stack, user, token
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        url = self.stack.web_url + path
        return requests.request(method, url, headers=self.headers, timeout=10, **kwargs)

    def create(self, workflow: dict) -> dict:
        response = self.call("POST", "/api/generations", json={"workflow": workflow})
        assert response.status_code == 201, response.text
        return response.json()

    def watch(self, query: str = "") -> Watcher:
        watcher = Watcher(f"{self.stack.ws_url}/api/ws/progress{query}")
        watcher.headers = self.headers
        return watcher


@pytest.fixture
def people(secured, transactional_db, django_user_model, request) -> dict[str, Caller]:
    requests.post(f"{secured.sim_url}/sim/reset", timeout=5)
    # User ids are reused after each test's flush: start every test with fresh rate counters.
    limits = redis.Redis.from_url(settings.REDIS_URL)
    for key in limits.scan_iter(match=f"{settings.REDIS_PREFIX}:rate:*"):
        limits.delete(key)
    found = {}
    for name, staff in (("alice", False), ("bob", False), ("root", True)):
        user = django_user_model.objects.create_user(name, password="pw", is_staff=staff)
        found[name] = Caller(secured, user, ApiToken.issue(user)[1])
    return found


async def ws_close_code(url: str, headers: dict | None = None, **kwargs) -> int | None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers or {}, **kwargs) as ws:
            frames = [msg async for msg in ws]
            assert all(f.type != aiohttp.WSMsgType.TEXT or "error" in f.data for f in frames)
            return ws.close_code


async def test_each_user_sees_only_their_own_and_staff_sees_both(people) -> None:
    alice, bob, root = people["alice"], people["bob"], people["root"]
    async with alice.watch() as a_fire, bob.watch() as b_fire, root.watch() as r_fire:
        a_gen = alice.create(slow_noise(steps=4, seconds=0.1, seed=21))["id"]
        b_gen = bob.create(slow_noise(steps=4, seconds=0.1, seed=22))["id"]
        await r_fire.until_done(a_gen)
        await r_fire.until_done(b_gen)
        await a_fire.until_done(a_gen)
        await b_fire.until_done(b_gen)
        await asyncio.sleep(0.3)
    assert {m["generationId"] for m in a_fire.messages} == {a_gen}
    assert {m["generationId"] for m in b_fire.messages} == {b_gen}
    assert {m["generationId"] for m in r_fire.messages} == {a_gen, b_gen}
    listed = {
        name: {g["id"] for g in caller.call("GET", "/api/generations").json()["results"]}
        for name, caller in people.items()
    }
    assert listed == {"alice": {a_gen}, "bob": {b_gen}, "root": {a_gen, b_gen}}


async def test_every_cross_user_attempt_is_refused(people) -> None:
    alice, bob = people["alice"], people["bob"]
    async with alice.watch() as watcher:
        gen = alice.create(slow_noise(steps=2, seconds=0.05, seed=31))
        done = await watcher.until_done(gen["id"])
    image = done[-1]["data"]["images"][0]
    base = f"/api/generations/{gen['id']}"
    assert bob.call("GET", base).status_code == 404
    assert bob.call("POST", base + "/cancel").status_code == 404  # 404 before 409: no leak
    assert bob.call("DELETE", base).status_code == 404
    assert bob.call("GET", base + "/preview").status_code == 404
    assert bob.call("GET", image).status_code == 404
    assert alice.call("GET", image).status_code == 200
    url = f"{alice.stack.ws_url}/api/ws/progress?generationId={gen['id']}"
    assert await ws_close_code(url, bob.headers) == 4403
    assert alice.call("DELETE", base).status_code == 204
    assert alice.call("GET", base).status_code == 404


async def test_missing_or_revoked_credentials(people) -> None:
    alice = people["alice"]
    web, ws = alice.stack.web_url, alice.stack.ws_url
    assert requests.get(f"{web}/api/generations", timeout=5).status_code == 401
    assert await ws_close_code(f"{ws}/api/ws/progress") == 4401
    assert alice.call("GET", "/api/generations").status_code == 200
    token = await asyncio.to_thread(ApiToken.objects.get, user=alice.user)
    await asyncio.to_thread(token.revoke)
    response = alice.call("GET", "/api/generations")
    assert response.status_code == 401 and "revoked" in response.json()["error"]
    assert await ws_close_code(f"{ws}/api/ws/progress", alice.headers) == 4401


async def test_foreign_origin_is_refused_at_the_handshake(people) -> None:
    alice = people["alice"]
    url = f"{alice.stack.ws_url}/api/ws/progress"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ws_close_code(url, alice.headers, origin="https://evil.example")
    assert refused.value.status == 403
    # Our own origin (scheme, host and port) is fine.
    assert await asyncio.wait_for(_opens(url, alice.headers, alice.stack.web_url), 10)


async def _opens(url: str, headers: dict, origin: str) -> bool:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers, origin=origin) as ws:
            await ws.send_str('{"type": "ping"}')
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT and '"pong"' in msg.data:
                    return True


async def test_cancel_queued_and_running_both_end_cancelled(people) -> None:
    alice = people["alice"]
    async with alice.watch() as watcher:
        running = alice.create(slow_noise(steps=30, seconds=0.1, seed=41))["id"]
        queued = alice.create(slow_noise(steps=3, seconds=0.1, seed=42))["id"]
        await watcher.until_step(running, 2)
        assert alice.call("POST", f"/api/generations/{queued}/cancel").status_code == 202
        assert kinds(await watcher.until_done(queued))[-1] == "cancelled"
        assert alice.call("POST", f"/api/generations/{running}/cancel").status_code == 202
        assert kinds(await watcher.until_done(running))[-1] == "cancelled"
    for gid in (queued, running):
        body = alice.call("GET", f"/api/generations/{gid}").json()
        assert body["status"] == "cancelled"
        assert alice.call("POST", f"/api/generations/{gid}/cancel").status_code == 409


async def test_queue_position_counts_down(people) -> None:
    root = people["root"]
    async with root.watch() as watcher:
        ids = [root.create(slow_noise(steps=3, seconds=0.15, seed=50 + i))["id"] for i in range(3)]
        for gid in ids:
            await watcher.until_done(gid)
    positions = {
        gid: [m["data"]["queuePosition"] for m in watcher.of(gid) if m["data"]["queuePosition"]]
        for gid in ids
    }
    # The third waited behind two, then one, then ran.
    assert positions[ids[2]][:2] == [2, 1]
    assert positions[ids[1]][:1] == [1]
    for gid in ids:
        assert kinds(watcher.of(gid))[-1] == "completed"


async def test_creating_is_rate_limited_per_user(people) -> None:
    bob, alice = people["bob"], people["alice"]
    for i in range(3):
        bob.create(slow_noise(steps=1, seconds=0.01, seed=60 + i))
    response = bob.call("POST", "/api/generations", json={"workflow": slow_noise(seed=70)})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    alice.create(slow_noise(steps=1, seconds=0.01, seed=71))  # others are not held back
