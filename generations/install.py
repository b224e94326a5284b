"""Values chosen once per install and agreed on by every process: the ComfyUI clientId.

ComfyUI sends a prompt's events only to the socket whose clientId the prompt carries, and a
new socket with that clientId takes them over. So the id must be unguessable (not derived
from anything public) and the same for the web side, which submits, and the monitor, which
listens. Both read it through ``comfyui_client_id``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

CLIENT_ID_SETTING = "comfyui_client_id"
_cache: dict[str, str] = {}


def comfyui_client_id() -> str:
    """``COMFYUI_CLIENT_ID`` when set, else this install's random id (made on first use)."""
    if settings.COMFYUI_CLIENT_ID:
        return settings.COMFYUI_CLIENT_ID
    if CLIENT_ID_SETTING not in _cache:
        _cache[CLIENT_ID_SETTING] = _outside_the_loop(_load_or_create_client_id)
    return _cache[CLIENT_ID_SETTING]


def _load_or_create_client_id() -> str:
    from generations.models import InstallSetting

    # get_or_create retries the read when another process inserted it first.
    row, _ = InstallSetting.objects.get_or_create(
        name=CLIENT_ID_SETTING, defaults={"value": "lockngen-" + secrets.token_hex(16)}
    )
    return row.value


def _outside_the_loop(fn: Callable[[], str]) -> str:
    """The monitor asks from inside its event loop, where Django forbids queries: use a thread.

    It happens once per process (the id is cached), so blocking the loop that long is fine.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_closing, fn).result()


def _closing(fn: Callable[[], str]) -> str:
    try:
        return fn()
    finally:
        connections.close_all()  # this thread's own connection, not left open
