"""Which ComfyUI server a new generation goes to: the one with the shortest queue."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from comfyui.client import ComfyClient, ComfyUnavailable

log = logging.getLogger("lockngen.backends")

# Asking each backend for its queue must not hold a request up for long.
PROBE_TIMEOUT = 2.0


def client_for(url: str) -> ComfyClient:
    return ComfyClient(url, timeout=settings.COMFYUI_HTTP_TIMEOUT)


def _queue_length(url: str) -> int | None:
    try:
        return ComfyClient(url, timeout=PROBE_TIMEOUT).queue_remaining()
    except ComfyUnavailable as exc:
        log.warning("backend %s skipped: %s", url, exc)
        return None


def choose_backend() -> str:
    """The reachable backend with the fewest prompts waiting (the first one on a tie)."""
    urls = settings.COMFYUI_URLS
    if len(urls) == 1:
        return urls[0]
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        lengths = list(pool.map(_queue_length, urls))
    reachable = [(length, i) for i, length in enumerate(lengths) if length is not None]
    if not reachable:
        raise ComfyUnavailable("no ComfyUI backend answers")
    return urls[min(reachable)[1]]
