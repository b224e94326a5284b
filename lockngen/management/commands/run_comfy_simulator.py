"""``python manage.py run_comfy_simulator``: a simulated ComfyUI for development and tests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.core.management.base import BaseCommand

from comfyui_sim import serve
from comfyui_sim.cli import add_arguments, config_from_options


class Command(BaseCommand):
    help = "Serve a ComfyUI simulator that speaks ComfyUI's HTTP + WebSocket protocol."
    requires_system_checks: list[str] = []  # no database or app checks needed
    requires_migrations_checks = False

    def add_arguments(self, parser: Any) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = config_from_options(options)
        self.stdout.write(f"ComfyUI simulator on http://{config.host}:{config.port}/")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config))
