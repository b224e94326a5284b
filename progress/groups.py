"""Every channel-layer group name comes from here."""

from __future__ import annotations

import uuid

FIREHOSE = "lockngen.firehose"


def generation_group(generation_id: uuid.UUID | str) -> str:
    """The group of one generation's watchers (group names allow only [a-z0-9._-])."""
    return f"lockngen.gen.{uuid.UUID(str(generation_id)).hex}"


def firehose_group() -> str:
    """The group that hears every generation's messages."""
    return FIREHOSE


def access_group(user_id: int) -> str:
    """The group that hears "this user's access changed" (revocation, logout, demotion)."""
    return f"generations.access.{int(user_id)}"
