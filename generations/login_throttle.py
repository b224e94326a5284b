"""Login throttling: after too many failures per username or per address, a lockout.

``LOCKNGEN_LOGIN_MAX_FAILURES`` failures within ``LOCKNGEN_LOGIN_WINDOW_SECONDS`` lock that
username (and, separately, that client address) for ``LOCKNGEN_LOGIN_LOCKOUT_SECONDS``:
every attempt is refused meanwhile, the right password too. The check sits in an
authentication backend placed first, so the login page, the admin's and any other caller
of ``authenticate()`` are all covered. ``manage.py unlock_login`` lifts a lockout.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import user_logged_in, user_login_failed
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse

from generations.slidingwindow import record
from generations.store import sync_redis

log = logging.getLogger("lockngen.login")


def _key(kind: str, scope: str, value: str) -> str:
    return f"{settings.REDIS_PREFIX}:login:{kind}:{scope}:{value}"


def _subjects(username: str | None, address: str | None) -> list[tuple[str, str]]:
    found = [("user", username.strip().lower())] if username else []
    return found + ([("ip", address)] if address else [])


def client_address(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def locked_for(client: Any, username: str | None, address: str | None) -> int:
    """Seconds left on the longest lockout of this username or address (0: none)."""
    keys = [_key("lock", *subject) for subject in _subjects(username, address)]
    return max([int(client.ttl(key)) for key in keys] + [0])


def record_failure(client: Any, username: str | None, address: str | None) -> None:
    """Count one failure; the one that reaches the limit starts a lockout."""
    conf = settings.LOCKNGEN
    for subject in _subjects(username, address):
        failures = record(client, _key("fail", *subject), conf["LOGIN_WINDOW_SECONDS"])
        if failures >= conf["LOGIN_MAX_FAILURES"]:
            client.set(_key("lock", *subject), 1, ex=conf["LOGIN_LOCKOUT_SECONDS"])
            client.delete(_key("fail", *subject))
            log.warning("login locked for %s %s after %d failures", *subject, failures)


def unlock(client: Any, username: str | None = None, address: str | None = None) -> int:
    """Lift the lockout (and forget the failures) of a username and/or address."""
    keys = [_key(k, *s) for s in _subjects(username, address) for k in ("lock", "fail")]
    return int(client.delete(*keys)) if keys else 0


def unlock_everyone(client: Any) -> int:
    keys = list(client.scan_iter(match=f"{settings.REDIS_PREFIX}:login:*", count=500))
    return int(client.delete(*keys)) if keys else 0


class LockoutBackend:
    """Refuses every attempt while the username or the address is locked out.

    No ``get_user``: it never logs anyone in, so sessions and ``force_login`` skip it.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kw: Any):
        try:
            wait = locked_for(sync_redis(), username, client_address(request))
        except redis.RedisError as exc:
            log.warning("login throttle not checked: %s", exc)  # fail open, as the rate limit
            return None
        if wait and request is not None:
            request.login_locked_for = wait
        if wait:
            raise PermissionDenied("locked out")  # stops authenticate() trying other backends
        return None


def _failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any) -> None:
    if getattr(request, "login_locked_for", 0):
        return  # attempts refused by the lockout do not extend it
    try:
        record_failure(sync_redis(), credentials.get("username"), client_address(request))
    except redis.RedisError as exc:
        log.warning("login failure not counted: %s", exc)


def _succeeded(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    # Only the username's count: an attacker's own good logins must not clear an address.
    try:
        sync_redis().delete(_key("fail", "user", user.get_username().strip().lower()))
    except redis.RedisError:
        pass


def connect_signals() -> None:
    user_login_failed.connect(_failed, dispatch_uid="lockngen-login-failed")
    user_logged_in.connect(_succeeded, dispatch_uid="lockngen-login-succeeded")


class LockoutMessageMixin:
    """Says "locked out, try again in N minutes" instead of "wrong password"."""

    request: HttpRequest | None

    def get_invalid_login_error(self) -> ValidationError:
        wait = getattr(self.request, "login_locked_for", 0)
        if wait:
            minutes = max(1, -(-wait // 60))
            return ValidationError(
                f"Too many failed sign-in attempts. Try again in {minutes} minute(s), "
                "or ask an administrator to unlock the account.",
                code="locked_out",
            )
        return super().get_invalid_login_error()  # type: ignore[misc]


class ThrottledAuthenticationForm(LockoutMessageMixin, AuthenticationForm):
    pass


class ThrottledLoginView(LoginView):
    """The login page, answering 429 while locked out."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if getattr(self.request, "login_locked_for", 0):
            response.status_code = 429
            response["Retry-After"] = str(self.request.login_locked_for)
        return response
