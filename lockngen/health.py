"""``/healthz``: the web process can reach its database and Redis (for load balancers)."""

from __future__ import annotations

import redis
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from progress.store import sync_redis


def healthz(request: HttpRequest) -> JsonResponse:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        problems.append(f"database: {exc}")
    try:
        sync_redis().ping()
    except redis.RedisError as exc:
        problems.append(f"redis: {exc}")
    if problems:
        return JsonResponse({"status": "unhealthy", "problems": problems}, status=503)
    return JsonResponse({"status": "ok"})
