"""Who may open /api/ws/progress, and what they hear (in-memory layer)."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from generations.models import Generation
from progress.consumers import ProgressConsumer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.REQUIRE_AUTH = True
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def communicator(user, path="/api/ws/progress", origin_ok=True) -> WebsocketCommunicator:
    query = path.partition("?")[2].encode()
    app = ProgressConsumer.as_asgi()
    comm = WebsocketCommunicator(app, path)
    comm.scope.update(user=user, origin_ok=origin_ok, query_string=query)
    return comm


def make_users(django_user_model):
    return (
        django_user_model.objects.create_user("ann", password="pw"),
        django_user_model.objects.create_user("ben", password="pw"),
    )


async def test_anonymous_gets_4401(django_user_model) -> None:
    comm = communicator(AnonymousUser())
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "error"
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_foreign_origin_is_refused_before_accepting(django_user_model) -> None:
    ann, _ = await database_sync_to_async(make_users)(django_user_model)
    connected, _ = await communicator(ann, origin_ok=False).connect()
    assert not connected


async def test_someone_elses_generation_gets_4403_and_nothing_else(django_user_model) -> None:
    ann, ben = await database_sync_to_async(make_users)(django_user_model)
    row = await database_sync_to_async(Generation.objects.create)(
        prompt_id=str(uuid.uuid4()), workflow={}, owner=ann, status="running"
    )
    comm = communicator(ben, f"/api/ws/progress?generationId={row.id}")
    assert (await comm.connect())[0]
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4403}


async def test_firehose_snapshots_only_the_viewers_generations(django_user_model) -> None:
    ann, ben = await database_sync_to_async(make_users)(django_user_model)
    create = database_sync_to_async(Generation.objects.create)
    mine = await create(prompt_id="a", workflow={}, owner=ann, status="running")
    await create(prompt_id="b", workflow={}, owner=ben, status="running")
    comm = communicator(ann)
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["generationId"] == str(mine.id)
    assert await comm.receive_nothing()
    await comm.disconnect()
