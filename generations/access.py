"""Who may still see what: the one check every long-lived stream repeats.

A WebSocket (or a future SSE stream) outlives the request that authenticated it, so it keeps
the *identity* it was opened with (user, and the token or session that proved it) and asks
``check_access`` again: on every resume frame, whenever an "access changed" event for its
user arrives (published by the signal handlers in ``progress/signals.py`` through the
channel layer, so every web process hears it), and periodically as a safety net.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.http import HttpRequest

from generations.models import ApiToken, Generation

log = logging.getLogger("lockngen.access")

ACCESS_CHANGED: Final = "access.changed"


@dataclass(frozen=True)
class Identity:
    """What authenticated a stream. Neither token nor session: the user alone (tests)."""

    user_id: int | None
    token_id: int | None = None
    session_key: str | None = None

    @property
    def session_tag(self) -> str | None:
        return session_tag(self.session_key) if self.session_key else None


@dataclass(frozen=True)
class Viewer:
    """What an identity may see right now."""

    user_id: int | None
    sees_all: bool  # staff, or an install without accounts

    def may_see(self, owner_id: int | None) -> bool:
        return self.sees_all or (self.user_id is not None and owner_id == self.user_id)


def session_tag(session_key: str) -> str:
    """A session named in events without putting its key (a credential) on the wire."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def _session_valid(identity: Identity) -> bool:
    """The session still exists, is this user's, and matches the current password hash."""
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore(identity.session_key)
    request = HttpRequest()
    request.session = store
    return get_user(request).pk == identity.user_id


def check_access(identity: Identity | None) -> Viewer | None:
    """The viewer this identity is now, or None when its access has ended (sync: DB)."""
    if not settings.REQUIRE_AUTH:
        return Viewer(None, sees_all=True)
    if identity is None or identity.user_id is None:
        return None
    user = get_user_model().objects.filter(pk=identity.user_id, is_active=True).first()
    if user is None:
        return None
    if identity.token_id is not None:
        live = ApiToken.objects.filter(
            pk=identity.token_id, user_id=user.pk, revoked_at__isnull=True
        )
        if not live.exists():
            return None
    elif identity.session_key is not None and not _session_valid(identity):
        return None
    return Viewer(user.pk, sees_all=user.is_staff)


def may_still_see(identity: Identity | None, generation_id: str | None = None) -> bool:
    """May this identity still watch this generation (None: the firehose)?"""
    viewer = check_access(identity)
    if viewer is None or generation_id is None:
        return viewer is not None
    owner = Generation.objects.filter(id=generation_id).values_list("owner_id", flat=True)
    found = list(owner[:1])
    return bool(found) and viewer.may_see(found[0])
