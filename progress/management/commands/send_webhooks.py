"""``python manage.py send_webhooks``: deliver the webhook outbox until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand

from progress.webhook_sender import Sender

log = logging.getLogger("lockngen.webhooks")


class Command(BaseCommand):
    help = "Send pending webhook deliveries (signed, retried, in order per generation)."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        sender = Sender()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sender.stop)
        log.info("webhook sender started")
        await sender.run()
        log.info("webhook sender stopped")
