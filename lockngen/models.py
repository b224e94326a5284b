"""The product's one domain object: a generation, tracked under our own UUID."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Chosen by us before submitting: ComfyUI's events can arrive before its HTTP answer.
    prompt_id = models.CharField(max_length=64, unique=True, default="")
    comfyui_url = models.CharField(max_length=255, default="", blank=True)
    workflow = models.JSONField(help_text="The submitted graph, in ComfyUI's API format")
    params = models.JSONField(default=dict, blank=True, help_text="What was asked for")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    current_node = models.CharField(max_length=255, blank=True, default="")
    step = models.PositiveIntegerField(null=True, blank=True)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    images = models.JSONField(default=list, blank=True)
    preview_seq = models.PositiveIntegerField(null=True, blank=True)
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    # High-water mark of the per-generation message counter: survives a Redis restart.
    seq = models.PositiveIntegerField(default=0)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
