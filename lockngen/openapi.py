"""``GET /api/openapi.json``: the HTTP API's OpenAPI 3.1 document, generated from the code.

Each view says what it takes and answers with ``@operation`` (the ``generations.api_types``
types its code builds); the paths come from the URLconf itself, and pydantic turns the types
into JSON Schema. A URL under ``api/`` whose view declares nothing fails
``tests/unit/test_openapi.py``, so nothing is left out of the document by accident.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, get_resolver
from pydantic import TypeAdapter

from generations import api_types as t
from generations import messages as m
from generations.auth import api_view
from generations.operations import Operation, operation

TITLE = "LockN Gen API"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
# What each error status means here; the body is always an ErrorBody.
ERRORS = {
    400: "The request is malformed; `field` names the part at fault",
    401: "No credentials, or an unknown or revoked API token",
    403: "A session caller without a valid CSRF token, or not allowed",
    404: "No such resource (another user's is not found either)",
    409: "The resource is not in a state that allows this",
    413: "The body is larger than allowed",
    429: "Over a per-user cap or rate; `Retry-After` says when to retry",
    503: "A dependency (ComfyUI, Redis) is unreachable; retry shortly",
}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_CONVERTERS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer", "minimum": 0},
    "str": {"type": "string", "pattern": "^[^/]+$"},
}


def routes() -> Iterator[tuple[str, Any]]:
    """Every ``(route, view)`` of the URLconf, includes flattened."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    yield from walk(get_resolver().url_patterns, "/")


def documented_routes() -> Iterator[tuple[str, Any]]:
    return ((route, view) for route, view in routes() if hasattr(view, "operations"))


def openapi_path(route: str) -> tuple[str, list[dict[str, Any]]]:
    """``/api/x/<uuid:x_id>`` → ``/api/x/{x_id}`` and its path parameters."""
    params = []
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", route):
        schema = _CONVERTERS[converter or "str"]
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), params


class Schemas:
    """The types the document names, turned into JSON Schema components in one pass."""

    def __init__(self) -> None:
        self.wanted: dict[tuple[int, str], tuple[Any, str]] = {}

    def ref(self, kind: Any, mode: str = "serialization") -> dict[str, Any]:
        """A placeholder filled in by ``resolve`` (pydantic must see every type at once)."""
        key = (id(kind), mode)
        self.wanted[key] = (kind, mode)
        return {"$lockngen": key}

    def resolve(self, document: dict[str, Any]) -> dict[str, Any]:
        inputs = [(key, mode, TypeAdapter(kind)) for key, (kind, mode) in self.wanted.items()]
        found, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)  # type: ignore[arg-type]
        by_key = {key: schema for (key, _mode), schema in found.items()}
        document.setdefault("components", {})["schemas"] = defs.get("$defs", {})
        return _fill(document, by_key)


def _fill(node: Any, by_key: dict[Any, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$lockngen"}:
            return by_key[node["$lockngen"]]
        return {k: _fill(v, by_key) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, by_key) for v in node]
    return node


def _query(kind: Any) -> list[dict[str, Any]]:
    schema = TypeAdapter(kind).json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _responses(method: str, op: Operation, schemas: Schemas) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": op.summary}
    if op.returns is not None:
        ok["content"] = {op.media: {"schema": schemas.ref(op.returns)}}
    elif op.media != "none":
        ok["content"] = {op.media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.ok): ok}
    for status, meaning in op.extra.items():
        responses[str(status)] = {"description": meaning}
    errors = {400, *op.errors}  # a NUL or too many fields in any query is refused before the view
    if not op.public:
        errors.add(401)
        if method in UNSAFE:
            errors.add(403)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": schemas.ref(t.ErrorBody)}},
        }
        if status == 429:
            responses[str(status)]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
    return responses


def _operation(
    method: str, op: Operation, path_params: list[dict[str, Any]], schemas: Schemas, name: str
) -> dict[str, Any]:
    params = list(path_params)
    if op.query is not None:
        params += _query(op.query)
    params += [
        {
            "name": header,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": meaning,
        }
        for header, meaning in op.headers
    ]
    out: dict[str, Any] = {
        "operationId": f"{name}_{method.lower()}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(method, op, schemas),
    }
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    if op.public:
        out["security"] = []
    return out


def build() -> dict[str, Any]:
    """The whole document, for this install's settings (an open install needs no login)."""
    schemas = Schemas()
    paths: dict[str, Any] = {}
    for route, view in documented_routes():
        path, params = openapi_path(route)
        name = re.sub(r"\W+", "_", path.strip("/")) or "root"
        paths[path] = {
            method.lower(): _operation(method, op, params, schemas, name)
            for method, op in view.operations.items()
        }
    for kind in (m.Message, m.ErrorFrame, m.PongFrame, m.PingFrame, m.ResumeFrame):
        schemas.ref(kind)  # the WebSocket's and SSE's messages, described as components
    document = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": _DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "security": _security(),
    }
    return schemas.resolve(document)


SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (POST /api/tokens, or `manage.py create_api_token`)",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "sessionid",
        "description": "A browser's login session; unsafe methods also need the CSRF token "
        "in `X-CSRFToken`, and the Origin of this site",
    },
}
_DESCRIPTION = (
    "Generations on ComfyUI servers, followed live. The live messages are described as "
    "components (`Message`, and the WebSocket's frames); the WebSocket `/api/ws/progress` "
    "has its own AsyncAPI document at `/api/asyncapi.json`. Server-Sent Events carry the "
    "same `Message` JSON as each event's `data`, with `id` `<seq>` (or `<generationId>:<seq>` "
    "on `/api/events`) for `Last-Event-ID`."
)


def _security() -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = [{"bearerToken": []}, {"session": []}]
    return schemes if settings.REQUIRE_AUTH else [*schemes, {}]


@functools.cache
def cached() -> dict[str, Any]:
    # The document depends only on the code and the settings: built once per process.
    return build()


@operation("GET", "This document", tag="meta", returns=dict[str, Any])
@api_view("GET")
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(cached(), json_dumps_params={"ensure_ascii": False})
