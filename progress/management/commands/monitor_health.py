"""``python manage.py monitor_health [--url URL]``: exit 0 while that monitor is connected.

It also prints what the monitor learned of its ComfyUI: version, jobs API, preview format.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generations.store import heartbeat_key, server_key, sync_redis


class Command(BaseCommand):
    help = "Health check of a run_comfy_monitor (its heartbeat in Redis)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=None, help="ComfyUI URL (default COMFYUI_URL)")

    def handle(self, *args: Any, **options: Any) -> None:
        url = (options["url"] or settings.COMFYUI_URL).rstrip("/")
        beat = sync_redis().get(heartbeat_key(url))
        self.stdout.write(describe(sync_redis().get(server_key(url))))
        if beat is None:
            raise CommandError(f"no heartbeat from the monitor of {url}")
        if beat != b"connected":
            raise CommandError(f"the monitor of {url} is up but not connected to ComfyUI")
        self.stdout.write("ok")


def describe(raw: bytes | str | None) -> str:
    """One line about the server, as the monitor logged it on connect."""
    try:
        facts = json.loads(raw) if raw else {}
    except ValueError:
        facts = {}
    api = facts.get("jobsApi")
    jobs = ("yes" if api else "no") if isinstance(api, bool) else "unknown"
    return (
        f"ComfyUI version {facts.get('version') or 'unknown'}, jobs API {jobs}, "
        f"previews {facts.get('previews') or 'unknown (none received yet)'}"
    )
