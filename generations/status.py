"""A generation's status: the one type every layer uses (rows, states, messages, the API).

A stdlib ``StrEnum`` rather than Django's ``TextChoices``: the pure modules (tracker, state)
use it without Django, and a type checker sees its members as ``Status``, not ``str``.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
# The model field's choices, as the first migration recorded them.
STATUS_CHOICES = [(s.value, s.value.capitalize()) for s in Status]
