"""Requests no database can store are refused before any view sees them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from lockngen.error_pages import api_error, is_api

FORM = "application/x-www-form-urlencoded"


class RejectNulMiddleware:
    """``\\x00`` in a path, a query or a form is a 400. PostgreSQL refuses NUL in any text, so
    no view should have to think of it (JSON bodies are generations.json_body's)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            if is_api(request):
                return api_error(400, "NUL characters are not accepted")
            return HttpResponseBadRequest(
                "NUL characters are not accepted", content_type="text/plain"
            )
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path:
        return True
    fields = [request.GET]
    if request.method == "POST" and request.content_type == FORM:
        fields.append(request.POST)
    return any(
        "\x00" in k or any("\x00" in v for v in values) for q in fields for k, values in q.lists()
    )
