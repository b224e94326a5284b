"""A WebSocket's inbox in daphne: the messages daphne hands the app, waiting for ``receive``.

daphne gives every connection an ``asyncio.Queue``: four deques (items, getters, putters,
and the waiters of its ``join`` event), about 3 KiB that an idle socket holds for as long as
it is open, for features an ASGI inbox never uses (a size bound, ``join``). ``Inbox`` is the
part that is used: ``put_nowait`` from daphne's protocol, ``get`` from the app, unbounded as
daphne's. HTTP requests keep daphne's queue.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from daphne.server import Server

_original_create = Server.create_application


class Inbox:
    """An unbounded FIFO of messages with awaiting readers, as small as an idle one can be."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None  # made when a reader waits

    def __bool__(self) -> bool:  # daphne tests ``if protocol.application_queue:``
        return True

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)  # woken, it takes the item itself: none lost
                return

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            waiters = self._waiters = self._waiters or []
            waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake_next(waiter)  # it was woken for an item it will not take
                raise
            finally:
                waiters.remove(waiter)
                if not waiters:
                    self._waiters = None
        return self._items.pop(0)

    def _wake_next(self, skip: asyncio.Future[None]) -> None:
        for waiter in self._waiters or ():
            if waiter is not skip and not waiter.done():
                waiter.set_result(None)
                return


def _create_application(self: Server, protocol: Any, scope: dict[str, Any]) -> Any:
    """daphne's ``create_application``, with an ``Inbox`` for WebSocket connections."""
    if scope.get("type") != "websocket":
        return _original_create(self, protocol, scope)
    assert "application_instance" not in self.connections[protocol]
    inbox = Inbox()
    scope.setdefault("asgi", {"version": "3.0"})
    app = self.application(
        scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol)
    )
    if protocol not in self.connections:  # it went away meanwhile
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(app)
    return inbox


def install() -> None:
    if Server.create_application is not _create_application:
        Server.create_application = _create_application
