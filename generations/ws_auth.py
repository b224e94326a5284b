"""The one middleware of WebSocket handshakes: route, Origin check, who is calling.

It replaces Channels' ``CookieMiddleware`` → ``SessionMiddleware`` → a token middleware →
``URLRouter``: four coroutine frames and four copies of the scope held by every open socket
for as long as it stays open. Here the scope is copied once, and the session is only *read*:
a socket never saves one, so it needs no lazy session object nor the wrapper of ``send``
that would save it.

What it sets, for the consumer to decide on:

- ``origin_ok``: no Origin (not a browser), or the whole origin is ours
  (``handshake_origin_ok``); a foreign page is refused at the handshake.
- ``user`` and ``identity``: from ``Authorization: Bearer <token>`` (``token_rejected`` says
  whether the token was refused), else from the session cookie, which counts only with an
  Origin of ours (any page can make a browser send the cookie, only ours sends our Origin).
  The identity keeps the session key, so a logout or a password change closes the socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.http.cookie import parse_cookie

from generations.access import Identity
from generations.auth import bearer_token, handshake_origin_ok, token_for

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class WebsocketAuth:
    """Routes a handshake by its exact path to a new app (a consumer) with the caller set."""

    def __init__(self, routes: Mapping[str, Callable[[], App]]) -> None:
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        make = self.routes.get(_route_path(scope))
        if make is None:  # as Channels' URLRouter: daphne answers the handshake with 500
            raise ValueError(f"No route found for path {scope.get('path')!r}.")
        scope = dict(scope)
        await authenticate(scope)
        await make()(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def _headers(scope: Scope) -> dict[bytes, str]:
    """The headers it reads, decoded (the first of each, as Channels reads the cookie)."""
    wanted = (b"origin", b"authorization", b"cookie")
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers") or ():
        if name in wanted and name not in found and value:
            found[name] = value.decode("latin-1")
    return found


async def authenticate(scope: Scope) -> None:
    """Set ``origin_ok``, ``user``, ``identity`` (and ``token_rejected``) in ``scope``."""
    headers = _headers(scope)
    origin = headers.get(b"origin")
    scope["origin_ok"] = handshake_origin_ok(scope, origin)
    scope["user"], scope["identity"] = AnonymousUser(), None
    raw = bearer_token(headers.get(b"authorization"))
    if not scope["origin_ok"]:
        return  # refused at the handshake: no need to look anyone up
    if raw is not None:
        token = await database_sync_to_async(token_for)(raw)
        if token is not None:
            scope["user"], scope["identity"] = token.user, Identity(token.user_id, token.id)
        scope["token_rejected"] = token is None
        return
    session_key = parse_cookie(headers.get(b"cookie", "")).get(settings.SESSION_COOKIE_NAME)
    if origin is not None and session_key:
        scope["user"], scope["identity"] = await database_sync_to_async(session_user)(session_key)


def session_user(session_key: str) -> tuple[Any, Identity | None]:
    """The user of a session (read, never saved), and the identity that names it."""
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(request)
    if not user.is_authenticated:
        return user, None
    return user, Identity(user.pk, session_key=request.session.session_key)
