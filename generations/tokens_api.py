"""``/api/tokens``: a user's own API tokens, listed, issued and revoked over the API.

Revoking one here closes every socket it opened, on every web process, as the command and
the admin action do (the token's ``post_save`` signal broadcasts the access change).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from generations.api_types import (
    TokenIssued,
    TokenJson,
    TokenList,
    TokenRequest,
    iso,
    iso_or_none,
)
from generations.auth import api_view
from generations.http import error
from generations.limits import MAX_LIVE_TOKENS
from generations.limits import TOKEN_NAME_MAX as MAX_NAME
from generations.models import ApiToken
from generations.operations import operation


def token_json(token: ApiToken) -> TokenJson:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "createdAt": iso(token.created_at),
        "lastUsedAt": iso_or_none(token.last_used_at),
        "revokedAt": iso_or_none(token.revoked_at),
    }


def _signed_in(request: HttpRequest) -> Any | None:
    user = getattr(request, "api_user", None)
    return user if user is not None and user.is_authenticated else None


@operation("GET", "The caller's API tokens", returns=TokenList, errors=(404,), tag="tokens")
@operation(
    "POST",
    "Issue a token; its secret is in this answer only",
    ok=201,
    returns=TokenIssued,
    body=TokenRequest,
    body_required=False,
    errors=(400, 404, 409),
    tag="tokens",
)
@api_view("GET", "POST")
def tokens(request: HttpRequest) -> HttpResponse:
    user = _signed_in(request)
    if user is None:
        return error(404, "there are no API tokens without accounts")
    if request.method == "GET":
        mine = ApiToken.objects.filter(user=user).order_by("-created_at")
        return JsonResponse({"results": [token_json(t) for t in mine]})
    return _issue(request, user)


def _issue(request: HttpRequest, user: Any) -> HttpResponse:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        return error(400, "body is not valid JSON")
    name = body.get("name", "") if isinstance(body, dict) else None
    if not isinstance(name, str) or len(name) > MAX_NAME or "\x00" in name:
        return error(400, f"name must be a string of at most {MAX_NAME} characters")
    live = ApiToken.objects.filter(user=user, revoked_at__isnull=True).count()
    if live >= MAX_LIVE_TOKENS:
        return error(409, f"at most {MAX_LIVE_TOKENS} live tokens: revoke one first")
    token, raw = ApiToken.issue(user, name=name)
    # The raw value is shown here once; only its hash is kept.
    return JsonResponse({**token_json(token), "token": raw}, status=201)


@operation(
    "DELETE",
    "Revoke one of the caller's tokens (its sockets close)",
    ok=204,
    media="none",
    errors=(404,),
    tag="tokens",
)
@api_view("DELETE")
def token(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the caller's tokens (204); another user's is a 404."""
    user = _signed_in(request)
    found = ApiToken.objects.filter(pk=token_id, user=user).first() if user else None
    if found is None:
        return error(404, f"no token {token_id}")
    found.revoke()
    return HttpResponse(status=204)
