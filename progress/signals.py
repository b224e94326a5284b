"""The hook points where someone's access changes: each announces it to every web process."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model, user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from generations.access import session_tag
from generations.models import ApiToken
from progress.events import AccessChanged, access_changed
from progress.groups import access_group

log = logging.getLogger("lockngen.access")

# Saves that change nothing a stream depends on (Django writes last_login at every login).
HARMLESS_FIELDS = frozenset({"last_login"})


@receiver(post_save, sender=ApiToken)
def token_saved(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    if instance.revoked_at is not None:
        announce(instance.user_id)


@receiver(post_delete, sender=ApiToken)
def token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    announce(instance.user_id)


def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """is_active, is_staff, the password: any of them may have changed."""
    fields = kwargs.get("update_fields")
    if created or (fields and set(fields) <= HARMLESS_FIELDS):
        return
    announce(instance.pk)


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    announce(instance.pk)


@receiver(user_logged_out)
def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed: the event names the ending session, so streams
    # opened with it close even if their process re-checks before the flush lands.
    if user is not None:
        session = getattr(request, "session", None)
        announce(user.pk, ended_session=getattr(session, "session_key", None))


def connect_user_signals() -> None:
    """The user model is only known once the apps are loaded."""
    model = get_user_model()
    post_save.connect(user_saved, sender=model, dispatch_uid="lockngen-user-saved")
    post_delete.connect(user_deleted, sender=model, dispatch_uid="lockngen-user-deleted")


# --------------------------------------------------------------------------- broadcast


def announce(user_id: int, ended_session: str | None = None) -> None:
    """Tell every web process that ``user_id``'s access changed (after the commit)."""
    event = access_changed(user_id, session_tag(ended_session) if ended_session else None)
    transaction.on_commit(lambda: _publish(user_id, event))


def _publish(user_id: int, event: AccessChanged) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(access_group(user_id), event)
    except Exception as exc:  # noqa: BLE001 - the periodic re-check still catches it
        log.warning("access change of user %s not broadcast: %s", user_id, exc)
