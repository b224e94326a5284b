"""``@operation``: what a view takes and answers, stated next to it for ``/api/openapi.json``
(the document itself is built by the project, ``lockngen/openapi.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Operation:
    """One method of one path, as the document states it."""

    summary: str
    ok: int = 200
    returns: Any = None  # a type for JSON; None with ``media`` for other bodies
    media: str = "application/json"
    body: Any = None
    body_required: bool = True
    query: Any = None
    headers: tuple[tuple[str, str], ...] = ()  # request headers it reads: (name, description)
    errors: tuple[int, ...] = ()
    public: bool = False  # no credentials needed
    tag: str = "generations"
    extra: dict[int, str] = field(default_factory=dict)  # further successes: status → meaning


def operation(method: str, summary: str, **details: Any) -> Callable[[Any], Any]:
    """Declare what ``method`` on this view takes and answers (stacked once per method)."""

    def mark(view: Any) -> Any:
        operations = dict(getattr(view, "operations", {}))
        operations[method] = Operation(summary=summary, **details)
        view.operations = operations
        return view

    return mark
