"""``python manage.py run_comfy_monitor``: follow a ComfyUI server and publish its progress."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand

from progress.comfy.client import ComfyClient
from progress.monitor import Monitor
from progress.publisher import Publisher
from progress.store import async_redis
from progress.tracker import Tracker

log = logging.getLogger("lockngen.monitor")


class Command(BaseCommand):
    help = "Hold ComfyUI's WebSocket open and publish generation progress to the channel layer."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=None, help="ComfyUI base URL (default COMFYUI_URL)")
        parser.add_argument("--client-id", default=None, help="default COMFYUI_CLIENT_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main(options["url"] or settings.COMFYUI_URL, options["client_id"]))

    async def _main(self, url: str, client_id: str | None) -> None:
        conf = settings.LOCKNGEN
        rate = conf["PREVIEW_MAX_PER_SECOND"]
        monitor = Monitor(
            comfy_url=url.rstrip("/"),
            client_id=client_id or settings.COMFYUI_CLIENT_ID,
            publisher=Publisher(
                get_channel_layer(),
                async_redis(),
                state_ttl=conf["STATE_TTL_SECONDS"],
                preview_ttl=conf["PREVIEW_TTL_SECONDS"],
            ),
            tracker=Tracker(preview_interval=1.0 / rate if rate > 0 else 0.0),
            client=ComfyClient(url, timeout=settings.COMFYUI_HTTP_TIMEOUT),
            progress_write_interval=conf["PROGRESS_WRITE_INTERVAL"],
            max_backoff=conf["RECONNECT_MAX_DELAY"],
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, monitor.stop)
        log.info("monitor watching %s as clientId %s", monitor.comfy_url, monitor.client_id)
        await monitor.run()
        log.info("monitor stopped")
