"""``python manage.py run_comfy_monitor``: follow a ComfyUI server and publish its progress."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from progress.monitor import build_monitor

log = logging.getLogger("lockngen.monitor")


class Command(BaseCommand):
    help = "Hold ComfyUI's WebSocket open and publish generation progress to the channel layer."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=None, help="ComfyUI base URL (default COMFYUI_URL)")
        parser.add_argument("--client-id", default=None, help="default COMFYUI_CLIENT_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main(options["url"] or settings.COMFYUI_URL, options["client_id"]))

    async def _main(self, url: str, client_id: str | None) -> None:
        monitor = build_monitor(url, client_id)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, monitor.stop)
        log.info("monitor watching %s as clientId %s", monitor.comfy_url, monitor.client_id)
        await monitor.run()
        log.info("monitor stopped")
