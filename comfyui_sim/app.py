"""The aiohttp application: ComfyUI routes (also under /api), the WebSocket, and /sim."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path

from aiohttp import WSMsgType, web

from .config import SimulatorConfig
from .engine import Engine
from .faults import FAULTS, Faults, sim_http_fault
from .hub import Connection, Hub
from .routes import ComfyRoutes

log = logging.getLogger("lockngen.simulator")

ENGINE = web.AppKey("engine", Engine)
HUB = web.AppKey("hub", Hub)
CONFIG = web.AppKey("config", SimulatorConfig)
_TASKS = web.AppKey("tasks", list)
_SCRATCH = web.AppKey("scratch", list)


def _resolve_dirs(config: SimulatorConfig) -> tuple[SimulatorConfig, Path | None]:
    """Fill unset output/temp/input dirs with a private temporary tree (removed on cleanup)."""
    if config.output_dir and config.temp_dir and config.input_dir:
        return config, None
    scratch = Path(tempfile.mkdtemp(prefix="comfy-sim-"))
    resolved = dataclasses.replace(
        config,
        output_dir=Path(config.output_dir or scratch / "output"),
        temp_dir=Path(config.temp_dir or scratch / "temp"),
        input_dir=Path(config.input_dir or scratch / "input"),
    )
    return resolved, scratch


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """``/ws?clientId=``: status on connect, reconnect replay, then only feature_flags is read."""
    engine, hub = request.app[ENGINE], request.app[HUB]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.query.get("clientId", "") or uuid.uuid4().hex
    conn = Connection(sid, ws, request)
    hub.register(conn)
    try:
        hub.send_json("status", {"status": engine.exec_info(), "sid": sid}, conn)
        node = engine.executor.last_node_id
        if node is not None and engine.running_client() == sid:
            hub.send_json("executing", {"node": node}, conn)  # no prompt_id, as ComfyUI
        first = True
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if first:
                _hello(hub, conn, msg.data, engine.traits.server_features())
            first = False
    finally:
        hub.unregister(conn)
    return ws


def _hello(hub: Hub, conn: Connection, text: str, features: dict[str, object]) -> None:
    """Only a first ``feature_flags`` message means anything; it gets the server's flags."""
    try:
        message = json.loads(text)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        flags = message.get("data")
        conn.flags = flags if isinstance(flags, dict) else {}
        hub.send_json("feature_flags", features, conn)


async def sim_drop_sockets(request: web.Request) -> web.Response:
    dropped = await request.app[HUB].drop_all()
    return web.json_response({"dropped": dropped})


async def sim_timeline(request: web.Request) -> web.Response:
    prompt_id = request.query.get("prompt_id", "")
    return web.json_response(request.app[HUB].timeline.get(prompt_id))


async def sim_reset(request: web.Request) -> web.Response:
    await request.app[ENGINE].reset()
    request.app[FAULTS].clear()
    return web.json_response({"reset": True})


async def _on_startup(app: web.Application) -> None:
    app[_TASKS].append(asyncio.create_task(app[HUB].run(), name="comfy-sim-publish"))
    app[ENGINE].start()


async def _on_shutdown(app: web.Application) -> None:
    await app[HUB].close_all()


async def _on_cleanup(app: web.Application) -> None:
    await app[ENGINE].stop()
    for task in app[_TASKS]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for scratch in app[_SCRATCH]:
        shutil.rmtree(scratch, ignore_errors=True)


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    """A ready-to-run simulated ComfyUI; the worker starts with the app."""
    config, scratch = _resolve_dirs(config or SimulatorConfig())
    for folder in (config.output_dir, config.temp_dir, config.input_dir):
        Path(folder or ".").mkdir(parents=True, exist_ok=True)
    hub = Hub(config.timeline_prompts)
    engine = Engine(config, hub)
    faults = Faults()
    app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[faults.middleware()])
    app[CONFIG], app[HUB], app[ENGINE], app[FAULTS] = config, hub, engine, faults
    app[_TASKS], app[_SCRATCH] = [], [scratch] if scratch else []
    dirs = {"output": config.output_dir, "temp": config.temp_dir, "input": config.input_dir}
    routes = ComfyRoutes(engine, {k: Path(v or ".") for k, v in dirs.items()})
    # ComfyUI duplicates every route under /api; the jobs routes are literally /api/jobs...,
    # so /api/api/jobs exists too. Variants without (some of) the jobs API simply lack them.
    for method, path, handler in routes.table() + routes.jobs_table():
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/ws", websocket)
    app.router.add_post("/sim/drop_sockets", sim_drop_sockets)
    app.router.add_get("/sim/timeline", sim_timeline)
    app.router.add_post("/sim/reset", sim_reset)
    app.router.add_post("/sim/http_fault", sim_http_fault)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def serve(config: SimulatorConfig | None = None) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``)."""
    config = config or SimulatorConfig()
    runner = web.AppRunner(create_app(config), shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info("ComfyUI simulator listening on http://%s:%s", config.host, config.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
