"""Fixtures: a simulator on a free loopback port, real aiohttp clients, frame recorders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from comfyui_sim import SimulatorConfig, create_app

from .frames import RECORDED, TRACES, TraceSet

if not TRACES.is_dir():  # the recorded traces live outside the repository
    pytest.skip("shared/comfyui/traces not available", allow_module_level=True)


from .harness import TIME_SCALE, Sim, StartSim


@pytest.fixture
def recorded(request: pytest.FixtureRequest) -> TraceSet:
    """The recording a test compares with: 0.3.64's unless parametrized by ``each_server``."""
    return getattr(request, "param", RECORDED)


@pytest.fixture
def variant(recorded: TraceSet) -> str:
    """The simulator variant ``start_sim`` plays by default."""
    return recorded.variant


@pytest_asyncio.fixture
async def start_sim(tmp_path: Path, variant: str) -> AsyncIterator[StartSim]:
    """Factory: ``await start_sim(time_scale=..., checkpoints=[...])``; all stopped at the end."""
    running: list[tuple[web.AppRunner, Sim]] = []

    async def start(**overrides: Any) -> Sim:
        root = tmp_path / f"sim{len(running)}"
        options: dict[str, Any] = {
            "variant": variant,
            "time_scale": TIME_SCALE,
            "output_dir": root / "output",
            "temp_dir": root / "temp",
            "input_dir": root / "input",
        }
        options.update(overrides)
        app = create_app(SimulatorConfig(**options))
        runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        sim = Sim(f"http://127.0.0.1:{port}", app, aiohttp.ClientSession())
        running.append((runner, sim))
        return sim

    yield start
    for runner, sim in running:
        for recorder in sim.recorders:
            await recorder.close()
        await sim.session.close()
        await runner.cleanup()


@pytest_asyncio.fixture
async def sim(start_sim: StartSim) -> Sim:
    return await start_sim()
