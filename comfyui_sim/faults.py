"""``POST /sim/http_fault``: make one HTTP path answer a canned response (NOT part of ComfyUI).

Tests use it to make, say, ``/queue`` answer garbage while a prompt runs. A fault on ``P``
replaces every GET and POST of exactly ``P`` and ``/api`` + ``P``; ``/sim/*`` is never faulted
(the switch must stay reachable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Fault:
    status: int
    body: str
    content_type: str | None


class Faults:
    """The active canned answers by path."""

    def __init__(self) -> None:
        self.by_path: dict[str, Fault] = {}

    def clear(self, path: str | None = None) -> None:
        if path is None:
            self.by_path.clear()
        else:
            self.by_path.pop(path, None)

    def match(self, method: str, path: str) -> Fault | None:
        if method not in ("GET", "POST") or path.startswith("/sim/"):
            return None
        fault = self.by_path.get(path)
        if fault is None and path.startswith("/api/"):
            fault = self.by_path.get(path[len("/api") :])
        return fault

    def middleware(self) -> Any:
        @web.middleware
        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            fault = self.match(request.method, request.path)
            if fault is None:
                return await handler(request)
            # headers, not content_type=: aiohttp refuses a charset there, a fault may want one
            headers = {"Content-Type": fault.content_type} if fault.content_type else None
            return web.Response(status=fault.status, body=fault.body.encode(), headers=headers)

        return inject

    def configure(self, body: Any) -> str | None:
        """Apply one POST /sim/http_fault body; the error text if it is not a valid one."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        path = body.get("path")
        if path is not None and not (isinstance(path, str) and path.startswith("/")):
            return "path must be a string starting with /"
        if body.get("clear"):
            self.clear(path)
            return None
        if path is None:
            return "path is required"
        status, text = body.get("status", 200), body.get("body", "")
        content_type = body.get("content_type", "application/json")
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            return "status must be an HTTP status code"
        if not isinstance(text, str) or not isinstance(content_type, (str, type(None))):
            return "body and content_type must be strings"
        self.by_path[path] = Fault(status, text, content_type)
        return None


FAULTS = web.AppKey("faults", Faults)


async def sim_http_fault(request: web.Request) -> web.Response:
    faults = request.app[FAULTS]
    try:
        body = await request.json()
    except ValueError:
        body = None
    problem = faults.configure(body)
    if problem is not None:
        return web.json_response({"error": problem}, status=400)
    return web.json_response({"faults": sorted(faults.by_path)})
