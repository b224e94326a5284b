"""``python manage.py run_comfy_monitor``: follow a ComfyUI server and publish its progress."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from progress import metrics, metrics_http
from progress.monitor import build_monitor

log = logging.getLogger("lockngen.monitor")
# The monitor's threads (ComfyUI's socket reader, the row writes) hold the GIL for up to the
# switch interval (5 ms by default) while the loop has a frame to publish: a shorter one
# bounds what they can add to a message's latency.
SWITCH_INTERVAL = 0.0005


class Command(BaseCommand):
    help = "Hold ComfyUI's WebSocket open and publish generation progress to the channel layer."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=None, help="ComfyUI base URL (default COMFYUI_URL)")
        parser.add_argument("--client-id", default=None, help="default COMFYUI_CLIENT_ID")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve Prometheus metrics on this port (off by default; bearer "
            "LOCKNGEN_METRICS_TOKEN)",
        )
        parser.add_argument("--metrics-host", default="127.0.0.1", help="default 127.0.0.1")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"] or settings.COMFYUI_URL
        metrics_at = (options["metrics_host"], options["metrics_port"])
        sys.setswitchinterval(SWITCH_INTERVAL)
        asyncio.run(self._main(url, options["client_id"], metrics_at))

    async def _main(self, url: str, client_id: str | None, metrics_at: tuple[str, Any]) -> None:
        monitor = build_monitor(url, client_id)
        gc.freeze()  # the loaded process, out of every full collection's walk (as asgi.py)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, monitor.stop)
        host, port = metrics_at
        runner = None
        if port is not None:
            runner = await metrics_http.serve(metrics.MONITOR, host, port, settings.METRICS_TOKEN)
        log.info("monitor watching %s as clientId %s", monitor.comfy_url, monitor.client_id)
        try:
            await monitor.run()
        finally:
            if runner is not None:
                await runner.cleanup()
        log.info("monitor stopped")
