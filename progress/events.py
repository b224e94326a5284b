"""The channel-layer event a published message travels in: one typed form, one constructor.

Built by the publisher (the monitor), read by the consumer and the SSE streams on every web
process (through ``progress.fanout``). The message is serialised once here, not per socket.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

from generations import messages as m
from generations.access import ACCESS_CHANGED


class LayerEvent(TypedDict):
    type: m.MessageType  # the message's own type (Channels routes on it)
    generation_id: str
    seq: int
    owner_id: int | None  # who may see it (checked once per viewer, not per socket)
    text: str  # the message as JSON, exactly as sockets send it
    received_at: float  # when the monitor read ComfyUI's frame (the delivery lag's start)


def layer_event(message: m.Message, owner_id: int | None, received_at: float) -> LayerEvent:
    return {
        "type": message["type"],
        "generation_id": message["generationId"],
        "seq": message["seq"],
        "owner_id": owner_id,
        "text": m.dumps(message),
        "received_at": received_at,
    }


class AccessChanged(TypedDict):
    """Someone's access changed (revoked token, logout, demotion): sent to their access group,
    so every socket and stream of theirs re-checks what it may carry."""

    type: Literal["access.changed"]
    user_id: int
    ended_session: NotRequired[str]  # the tag of a session that ended (logout)


def access_changed(user_id: int, ended_session: str | None = None) -> AccessChanged:
    event: AccessChanged = {"type": ACCESS_CHANGED, "user_id": user_id}
    if ended_session:
        event["ended_session"] = ended_session
    return event


# What a FanOut member can be handed.
GroupEvent = LayerEvent | AccessChanged
