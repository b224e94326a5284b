"""Embedded mode: daphne and the monitor in one process, with no Redis at all.

``python -m lockngen.embedded --port 8000`` (``run_stack`` starts it when Redis does not
answer). The channel layer is Channels' in-memory one and Redis is replaced by fakeredis, both
shared by the web side and the monitor because they live in the same process and event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

log = logging.getLogger("lockngen.embedded")


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the embedded monitor died", exc_info=task.exception())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    os.environ["LOCKNGEN_EMBEDDED"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lockngen.settings")

    from daphne.server import Server, twisted_loop  # installs Twisted's asyncio reactor first
    from django.conf import settings
    from twisted.internet import reactor

    from lockngen.asgi import application
    from progress.monitor import build_monitor

    async def run_monitor() -> None:
        monitor = build_monitor(settings.COMFYUI_URL)  # inside the running loop
        reactor.addSystemEventTrigger("before", "shutdown", monitor.stop)  # type: ignore[arg-type]
        log.info("embedded monitor started for %s", settings.COMFYUI_URL)
        await monitor.run()

    def start_monitor() -> None:
        twisted_loop.create_task(run_monitor()).add_done_callback(_report)

    reactor.callWhenRunning(start_monitor)
    Server(
        application=application,
        endpoints=[f"tcp:port={args.port}:interface={args.host}"],
        signal_handlers=True,
        ping_interval=30,
        ping_timeout=30,
    ).run()


if __name__ == "__main__":
    main()
