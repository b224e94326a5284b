"""``GET /metrics``: this web process's Prometheus metrics, for operators only.

A staff user (session, or their API token) or ``Authorization: Bearer
$LOCKNGEN_METRICS_TOKEN``. Everyone else gets 401 (no or unknown credentials) or 403 (a user
who is not staff), also on an open install (``LOCKNGEN_REQUIRE_AUTH=false``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from generations.auth import user_for_token
from generations.operations import operation
from progress import metrics
from progress.metrics_http import bearer, token_matches


def access(user: Any | None, raw_token: str | None) -> int:
    """The HTTP status for a caller: 200, 401 or 403. ``user`` is the session's (or None)."""
    if raw_token is not None:
        if token_matches(raw_token, settings.METRICS_TOKEN):
            return 200
        user = user_for_token(raw_token)  # a user's API token: staff only
        if user is None:
            return 401
    if user is None or not user.is_authenticated:
        return 401
    return 200 if user.is_staff else 403


@operation(
    "GET",
    "This process's Prometheus metrics: staff, or the metrics token as a bearer token",
    media="text/plain",
    errors=(403,),
    tag="meta",
)
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"error": f"{request.method} not allowed"}, status=405)
    status = access(request.user, bearer(request.headers.get("Authorization")))
    if status == 401:
        response = JsonResponse({"error": "staff login or the metrics token required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if status == 403:
        return JsonResponse({"error": "metrics are for staff"}, status=403)
    registry = metrics.EMBEDDED if settings.EMBEDDED else metrics.WEB
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
