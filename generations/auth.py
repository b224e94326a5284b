"""Who is calling: a Django session (browsers) or ``Authorization: Bearer <token>`` (API clients).

One place decides, for HTTP and WebSocket alike, and one place says what a user may see.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from generations.access import Identity
from generations.http import ApiError
from generations.models import ApiToken, Generation, hash_token
from generations.origins import origin_allowed

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def user_for_token(raw: str) -> Any | None:
    """The active user behind a token, or None (unknown, revoked, or user inactive)."""
    token = token_for(raw)
    return token.user if token is not None else None


def token_for(raw: str) -> ApiToken | None:
    """The live token (its user active) with this value, or None."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)  # at most once a minute
    return token


def visible(user: Any) -> QuerySet[Generation]:
    """The generations this caller may see: their own; staff and open installs see all."""
    rows = Generation.objects.select_related("owner")
    if not settings.REQUIRE_AUTH or (user is not None and user.is_staff):
        return rows
    return rows.filter(owner=user) if user is not None else rows.none()


def may_see(user: Any, owner_id: int | None) -> bool:
    if not settings.REQUIRE_AUTH or (user is not None and user.is_staff):
        return True
    return user is not None and owner_id == user.id


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})


def api_view(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """JSON API view: method check, authentication (401), CSRF for session callers (403)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = JsonResponse({"error": f"{request.method} not allowed"}, status=405)
                response["Allow"] = ", ".join(methods)
                return response
            user, failure = _authenticate(request)
            if failure is not None:
                return failure
            request.api_user = user
            try:
                return view(request, *args, **kwargs)
            except ApiError as refused:
                return refused.response()

        wrapper.csrf_exempt = True  # type: ignore[attr-defined]  # checked above, per caller
        wrapper.methods = methods  # type: ignore[attr-defined]  # what lockngen.openapi must state
        return wrapper

    return decorate


def _authenticate(request: HttpRequest) -> tuple[Any | None, HttpResponse | None]:
    raw = bearer_token(request.headers.get("Authorization"))
    if raw is not None:
        user = user_for_token(raw)
        if user is None:
            return None, _unauthorized("invalid or revoked API token")
        return user, None  # a bearer token is not ambient: no CSRF to check
    user = request.user if request.user.is_authenticated else None
    if user is not None and request.method not in SAFE_METHODS:
        failure = _csrf_failure(request)
        if failure is not None:
            return None, JsonResponse({"error": "CSRF check failed"}, status=403)
    if user is None and settings.REQUIRE_AUTH:
        return None, _unauthorized("authentication required")
    return user, None


async def identify(request: HttpRequest) -> tuple[Any | None, Identity | None, HttpResponse | None]:
    """For long-lived GET streams (SSE): the caller as ``_authenticate`` sees it, and the
    identity that proved it (token or session), which the stream re-checks while open."""
    raw = bearer_token(request.headers.get("Authorization"))
    if raw is not None:
        token = await database_sync_to_async(token_for)(raw)
        if token is None:
            return None, None, _unauthorized("invalid or revoked API token")
        return token.user, Identity(token.user_id, token.id), None
    user = await request.auser()
    if user.is_authenticated:
        return user, Identity(user.pk, session_key=request.session.session_key), None
    if settings.REQUIRE_AUTH:
        return None, None, _unauthorized("authentication required")
    return None, None, None


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="lockngen"'
    return response


# --------------------------------------------------------------------------- WebSocket


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value else None


def handshake_origin_ok(scope: dict[str, Any], origin: str | None) -> bool:
    """No Origin: not a browser (it must then bring a token). Else the whole origin must
    be this site's (scheme, host and port) or one of ``CSRF_TRUSTED_ORIGINS``."""
    if origin is None:
        return True
    hosts = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    host = _header(dict(scope.get("headers") or []), b"host")
    scheme = scope.get("scheme") or "ws"
    return origin_allowed(origin, scheme, host, hosts, settings.CSRF_TRUSTED_ORIGINS)
