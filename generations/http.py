"""The API's errors in one form: ``{"error": message, ...}`` with a status. A view (or a
service it calls) raises ``ApiError``; ``api_view`` turns it into the JSON answer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def response(self) -> JsonResponse:
        return error(self.status, self.message, **self.extra)


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def page_limit(request: HttpRequest, default: int, maximum: int) -> int:
    """``?limit=``, checked: an integer from 1 to ``maximum`` (400 naming the field if not)."""
    try:
        limit = int(request.GET.get("limit", default))
    except ValueError:
        raise ApiError(400, "limit must be an integer", field="limit") from None
    if not 1 <= limit <= maximum:
        raise ApiError(400, f"limit must be between 1 and {maximum}", field="limit")
    return limit
