"""The live side, checked against the documents the server serves: every SSE event's data and
every WebSocket frame of a real generation fits its schema (schemathesis cannot follow a
stream that stays open, so these are read here, through real clients)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.contract.schemas import problems
from tests.integration.clients import Watcher, slow_noise
from tests.sse.client import EventStream

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def served(stack, caller, name: str) -> dict:
    answer = requests.get(f"{stack.web_url}/api/{name}", headers=caller, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_ws_and_sse_messages_match_the_served_schemas(secured, caller) -> None:
    openapi, asyncapi = (
        served(secured, caller, "openapi.json"),
        served(secured, caller, "asyncapi.json"),
    )
    watcher = Watcher(f"{secured.ws_url}/api/ws/progress")
    watcher.headers = caller
    async with watcher:
        created = requests.post(
            f"{secured.web_url}/api/generations",
            json={"workflow": slow_noise(steps=4, seconds=0.05, seed=5)},
            headers=caller,
            timeout=15,
        )
        assert created.status_code == 201, created.text
        assert problems(openapi, "GenerationJson", created.json()) == []
        generation_id = created.json()["id"]
        await watcher.until_done(generation_id)
        await watcher.send(json.dumps({"type": "ping"}))
        await watcher.send("{not json")
        await watcher.until(lambda got: any(f["type"] == "error" for f in got))
    frames = watcher.messages
    kinds = {f["type"] for f in frames}
    assert {"generation.queued", "generation.progress", "generation.completed", "pong"} <= kinds
    for frame in frames:
        component = {"pong": "PongFrame", "error": "ErrorFrame"}.get(frame["type"], "Message")
        assert problems(asyncapi, component, frame) == [], frame

    url = f"{secured.web_url}/api/generations/{generation_id}/events?afterSeq=0"
    async with EventStream(url, caller) as stream:
        await stream.until_ended()
    assert stream.content_type.startswith("text/event-stream")
    replayed = stream.messages()
    assert replayed and replayed[-1]["type"] == "generation.completed"
    for message in replayed:
        assert problems(openapi, "Message", message) == [], message
    assert [e["id"] for e in stream.events] == [str(m["seq"]) for m in replayed]

    fetched = requests.get(
        f"{secured.web_url}/api/generations/{generation_id}", headers=caller, timeout=10
    )
    assert problems(openapi, "GenerationJson", fetched.json()) == []
