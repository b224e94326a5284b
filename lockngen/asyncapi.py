"""``GET /api/asyncapi.json``: the progress WebSocket as an AsyncAPI 3.0 document.

Generated from the same types the code sends and reads (``generations.messages``) and the
consumer's own close codes, through the OpenAPI document's schema builder.
"""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest, JsonResponse

from generations import messages as m
from generations.auth import api_view
from lockngen import openapi
from progress import consumers

ASYNCAPI_REF = "#/components/schemas/{model}"
CLOSE_CODES = {
    consumers.CLOSE_BAD_REQUEST: "generationId is not a UUID",
    consumers.CLOSE_UNAUTHORIZED: "no valid credentials, or access ended (logout, revocation, "
    "demotion): sign in again",
    consumers.CLOSE_FORBIDDEN: "another user's generation",
    consumers.CLOSE_NOT_FOUND: "no such generation",
    consumers.CLOSE_TOO_MANY: "over the per-user (or per-address) cap of open progress sockets",
    consumers.CLOSE_LAYER_DOWN: "the channel layer failed: reconnect and resume by seq",
}
# (component name, the type, what it is, who sends it)
MESSAGES: tuple[tuple[str, Any, str, str], ...] = (
    (
        "Message",
        m.Message,
        "A generation's message; `seq` orders a generation's messages",
        "server",
    ),
    ("ErrorFrame", m.ErrorFrame, "A client frame the server could not take", "server"),
    ("PongFrame", m.PongFrame, "The answer to a ping", "server"),
    ("PingFrame", m.PingFrame, "A heartbeat", "client"),
    ("ResumeFrame", m.ResumeFrame, "Replay a generation's messages after afterSeq", "client"),
)


def _channel_description() -> str:
    codes = "; ".join(f"{code}: {why}" for code, why in sorted(CLOSE_CODES.items()))
    return (
        "Live messages of the caller's generations (all of them, or one with "
        "`?generationId=`; `&afterSeq=` resumes after that seq). A snapshot of each active "
        "generation comes first, then every message in seq order, never a gap: a snapshot "
        'with `"recovered": false` stands in for messages the log lost. Browsers are '
        "authenticated by their session and must send this site's Origin; other clients "
        f"send `Authorization: Bearer <token>`. Close codes: {codes}."
    )


def build() -> dict[str, Any]:
    schemas = openapi.Schemas()
    messages: dict[str, Any] = {}
    for name, kind, summary, _sender in MESSAGES:
        messages[name] = {
            "name": name,
            "summary": summary,
            "contentType": "application/json",
            "payload": schemas.ref(kind),
        }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {"title": f"{openapi.TITLE}: progress WebSocket", "version": openapi.VERSION},
        "channels": {
            "progress": {
                "address": "/api/ws/progress",
                "description": _channel_description(),
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {"ws": {"query": _query_schema(), "bindingVersion": "0.1.0"}},
            }
        },
        "operations": {f"{sender}Sends": _operation(sender) for sender in ("server", "client")},
        "components": {"messages": messages},
    }
    return schemas.resolve(document)


def _operation(sender: str) -> dict[str, Any]:
    # AsyncAPI's actions are the application's (the server's): it sends, or receives.
    return {
        "action": "send" if sender == "server" else "receive",
        "channel": {"$ref": "#/channels/progress"},
        "messages": [
            {"$ref": f"#/channels/generations/messages/{name}"}
            for name, _kind, _summary, who in MESSAGES
            if who == sender
        ],
    }


def _query_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "generationId": {"type": "string", "format": "uuid"},
            "afterSeq": {"type": "integer", "minimum": 0},
        },
    }


@functools.cache
def cached() -> dict[str, Any]:
    return build()


@openapi.operation(
    "GET", "The progress WebSocket's AsyncAPI 3.0 document", tag="meta", returns=dict[str, Any]
)
@api_view("GET")
def asyncapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(cached(), json_dumps_params={"ensure_ascii": False})
