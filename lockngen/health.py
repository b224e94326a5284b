"""``/healthz``: the web process can reach its database and Redis (for load balancers)."""

from __future__ import annotations

import logging

import redis
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from generations.api_types import Health
from generations.operations import operation
from generations.store import sync_redis

log = logging.getLogger("lockngen.health")


@operation(
    "GET",
    "This web process reaches its database and Redis (503 with the failing ones if not)",
    returns=Health,
    public=True,
    errors=(503,),
    tag="meta",
)
def healthz(request: HttpRequest) -> JsonResponse:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        # Anyone may ask: the error (host names, addresses) goes to the log, not to them.
        log.warning("healthz: database: %s", exc)
        problems.append("database")
    try:
        sync_redis().ping()
    except redis.RedisError as exc:
        log.warning("healthz: redis: %s", exc)
        problems.append("redis")
    if problems:
        return JsonResponse({"status": "unhealthy", "problems": problems}, status=503)
    return JsonResponse({"status": "ok"})
