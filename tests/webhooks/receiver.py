"""A real HTTP endpoint on a loopback port that answers webhooks as a script says."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float
    answered: int | None = None  # None: never answered (held past the sender's timeout)


# A script: (path, number of this request on that path, 1-based) -> what to do.
# An int is the status to answer; "hang" holds the request until the receiver stops.
Script = Callable[[str, int], "int | str"]


def always(status: int) -> Script:
    return lambda path, n: status


@dataclass
class Receiver:
    """aiohttp in a thread of its own: the test process keeps its own loop free."""

    script: Script = field(default=lambda path, n: 200)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def start(self) -> Receiver:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "receiver did not start"
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._loop.run_until_complete(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        seen = sum(r.path == request.path for r in self.received) + 1
        entry = Received(request.path, dict(request.headers), body, time.time())
        self.received.append(entry)
        action = self.script(request.path, seen)
        if action == "hang":
            await self._stop.wait()
            return web.Response(status=503)
        entry.answered = int(action)
        return web.Response(status=int(action), text="ok")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                got = [(r.path, r.body[:80], r.answered) for r in self.received[-6:]]
                raise AssertionError(f"timed out; last received: {got}")
            time.sleep(0.05)
