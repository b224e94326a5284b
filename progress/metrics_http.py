"""The monitor's ``/metrics``: a small aiohttp server on the monitor's own event loop.

On the loop, not in a thread: the monitor stays one process with one loop, and a loop that
is stuck shows as a scrape that fails. Bearer token only (``LOCKNGEN_METRICS_TOKEN``).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("lockngen.metrics")


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, value = (header or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def token_matches(raw: str | None, token: str) -> bool:
    """Constant time; an unset token (empty) matches nothing."""
    if not raw or not token:
        return False
    return hmac.compare_digest(raw.encode(), token.encode())


def unauthorized(message: str) -> web.Response:
    return web.json_response(
        {"error": message}, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
    )


def metrics_app(registry: CollectorRegistry, token: str) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        raw = bearer(request.headers.get("Authorization"))
        if raw is None:
            return unauthorized("Authorization: Bearer <LOCKNGEN_METRICS_TOKEN> required")
        if not token_matches(raw, token):
            return unauthorized("wrong metrics token")
        return web.Response(
            body=generate_latest(registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def serve(registry: CollectorRegistry, host: str, port: int, token: str) -> web.AppRunner:
    """Start serving; the caller cleans the runner up when the monitor stops."""
    if not token:
        log.warning("LOCKNGEN_METRICS_TOKEN is not set: the metrics port answers 401 to everyone")
    runner = web.AppRunner(metrics_app(registry, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("monitor metrics on http://%s:%d/metrics", host, port)
    return runner
