"""The product's one domain object: a generation, tracked under our own UUID."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from generations.status import ACTIVE_STATUSES, STATUS_CHOICES, Status


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Chosen by us before submitting: ComfyUI's events can arrive before its HTTP answer.
    prompt_id = models.CharField(max_length=64, unique=True, default="")
    comfyui_url = models.CharField(max_length=255, default="", blank=True)
    workflow = models.JSONField(help_text="The submitted graph, in ComfyUI's API format")
    params = models.JSONField(default=dict, blank=True, help_text="What was asked for")
    status = models.CharField(
        max_length=16, choices=STATUS_CHOICES, default=Status.QUEUED.value, db_index=True
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
    # Set by the cancel API: a queued prompt deleted from ComfyUI's queue leaves no trace
    # there, so this is how the monitor tells "cancelled" from "lost".
    cancel_requested = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When ComfyUI began running it: the per-generation run limit counts from here.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


TOKEN_PREFIX = "lng_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A bearer token for API clients; only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, db_index=True, help_text="Shown to tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, user: models.Model, name: str = "") -> tuple[ApiToken, str]:
        """A new token; the raw value is returned once and never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, prefix=raw[: len(TOKEN_PREFIX) + 8], key_hash=hash_token(raw)
        )
        return token, raw

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class InstallSetting(models.Model):
    """A value chosen once per install and shared by every process (e.g. the ComfyUI clientId)."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.CharField(max_length=255)

    def __str__(self) -> str:
        return self.name


def new_webhook_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (Standard Webhooks' secret format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Webhook(models.Model):
    """An endpoint of a user's: their generations' events are POSTed to it, signed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null only on an install without accounts: then it hears the ownerless generations.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhooks",
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=128, default=new_webhook_secret, editable=False)
    active = models.BooleanField(default=True, help_text="Off after failing for 24 hours")
    # Since when every attempt has failed (cleared by a success); the admin shows it.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: a 4xx that is not retried, or 24 hours of failures


class WebhookDelivery(models.Model):
    """The outbox: one event for one endpoint, written in the same transaction as the
    generation's row. Within a stream (endpoint, generation) the id is the sending order."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    # No foreign key: a deleted generation's events already recorded still go out.
    generation_id = models.UUIDField(null=True, blank=True)
    seq = models.PositiveIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=80, help_text="The webhook-id header")
    body = models.TextField()
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # A claim: whoever holds the token until lease_until is sending it.
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["webhook", "generation_id", "state"]),
        ]
        constraints = [
            # A message recorded twice (a retried save) is queued once.
            models.UniqueConstraint(
                fields=["webhook", "generation_id", "seq"],
                condition=models.Q(redelivery_of__isnull=True),
                name="one_delivery_per_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.seq} → {self.webhook_id}"


class WebhookAttempt(models.Model):
    """One try at a delivery, for GET /api/webhooks/<id>/deliveries and the admin."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="attempts")
    attempt = models.PositiveIntegerField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-created_at"])]
