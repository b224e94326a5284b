"""The one WebSocket middleware: routes, Origin check, token, session, anonymous."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore

from generations.access import Identity
from generations.models import ApiToken
from generations.ws_auth import WebsocketAuth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

OURS = b"http://localhost:8000"


class Recorder:
    """A stand-in consumer: keeps the scope it was called with."""

    seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        Recorder.seen.append(scope)


@pytest.fixture
def call():
    Recorder.seen = []
    app = WebsocketAuth({"/api/ws/progress": Recorder})

    async def run(*headers: tuple[bytes, bytes], path: str = "/api/ws/progress") -> dict:
        scope = {"type": "websocket", "path": path, "headers": [(b"host", b"localhost:8000")]}
        scope["headers"] += list(headers)
        await app(scope, None, None)
        assert "user" not in scope  # the caller's scope is copied, not changed
        return Recorder.seen[-1]

    return run


@pytest.fixture
def ann(db):
    return get_user_model().objects.create_user("ann", password="pw")


def session_of(user: Any) -> str:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    assert store.session_key is not None
    return store.session_key


async def test_anonymous(call) -> None:
    scope = await call()
    assert scope["origin_ok"] and scope["identity"] is None
    assert not scope["user"].is_authenticated and "token_rejected" not in scope


async def test_foreign_origin_is_refused_and_nobody_looked_up(call, ann) -> None:
    key = await database_sync_to_async(session_of)(ann)
    cookie = (b"cookie", f"sessionid={key}".encode())
    scope = await call((b"origin", b"http://evil.example"), cookie)
    assert not scope["origin_ok"] and not scope["user"].is_authenticated


async def test_same_host_other_port_is_foreign(call) -> None:
    assert not (await call((b"origin", b"http://localhost:9999")))["origin_ok"]


async def test_token(call, ann) -> None:
    token, raw = await database_sync_to_async(ApiToken.issue)(ann)
    scope = await call((b"authorization", f"Bearer {raw}".encode()))
    assert scope["user"].pk == ann.pk and scope["identity"] == Identity(ann.pk, token.id)
    assert scope["token_rejected"] is False


async def test_bad_token_is_rejected(call) -> None:
    scope = await call((b"authorization", b"Bearer nope"))
    assert scope["token_rejected"] is True and not scope["user"].is_authenticated


async def test_session_with_our_origin(call, ann) -> None:
    key = await database_sync_to_async(session_of)(ann)
    scope = await call((b"origin", OURS), (b"cookie", f"a=b; sessionid={key}".encode()))
    assert scope["user"].pk == ann.pk
    assert scope["identity"] == Identity(ann.pk, session_key=key)  # logout re-checks need it


async def test_session_without_origin_counts_for_nothing(call, ann) -> None:
    key = await database_sync_to_async(session_of)(ann)
    scope = await call((b"cookie", f"sessionid={key}".encode()))
    assert not scope["user"].is_authenticated and scope["identity"] is None


async def test_unknown_session_is_anonymous(call) -> None:
    scope = await call((b"origin", OURS), (b"cookie", b"sessionid=notasessionatall"))
    assert not scope["user"].is_authenticated and scope["identity"] is None


async def test_token_wins_over_session(call, ann) -> None:
    bob = await database_sync_to_async(get_user_model().objects.create_user)("bob")
    key = await database_sync_to_async(session_of)(bob)
    token, raw = await database_sync_to_async(ApiToken.issue)(ann)
    cookie = (b"cookie", f"sessionid={key}".encode())
    scope = await call((b"origin", OURS), (b"authorization", f"Bearer {raw}".encode()), cookie)
    assert scope["identity"] == Identity(ann.pk, token.id)


async def test_unknown_path_is_not_routed(call) -> None:
    with pytest.raises(ValueError, match="No route"):
        await call(path="/api/ws/other")


async def test_root_path_is_stripped() -> None:
    Recorder.seen = []
    scope = {"type": "websocket", "path": "/gen/api/ws/progress", "root_path": "/gen"}
    await WebsocketAuth({"/api/ws/progress": Recorder})(scope, None, None)
    assert Recorder.seen
