"""Django admin: generations (with a live "Active generations" page) and API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from generations import api, outbox, services
from generations.login_throttle import LockoutMessageMixin
from generations.models import (
    ApiToken,
    Generation,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from generations.status import ACTIVE_STATUSES


class ThrottledAdminAuthenticationForm(LockoutMessageMixin, AdminAuthenticationForm):
    pass


# The admin's login is throttled like the site's (the backend); this form says so.
admin.site.login_form = ThrottledAdminAuthenticationForm

# The Active page shows at most this many generations (the newest).
MAX_ACTIVE_ROWS = 500


def active_rows_json(request: HttpRequest) -> list[dict[str, Any]]:
    """Every queued and running generation as the API shows it, plus what staff need."""
    rows = (
        Generation.objects.filter(status__in=ACTIVE_STATUSES)
        .select_related("owner")
        .order_by("-created_at", "-id")[:MAX_ACTIVE_ROWS]
    )
    result = []
    for row in rows:
        data: dict[str, Any] = dict(api.generation_json(row))
        data.pop("workflow", None)  # large, and not shown
        data["owner"] = row.owner.get_username() if row.owner else None
        data["promptId"] = row.prompt_id
        data["adminUrl"] = reverse("admin:lockngen_generation_change", args=[row.pk])
        result.append(data)
    return result


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status",
        "owner",
        "progress_bar",
        "current_node",
        "age",
        "prompt_id",
    )
    list_display_links = ("short_id",)
    list_filter = ("status", "owner")
    list_select_related = ("owner",)
    search_fields = ("id", "prompt_id", "owner__username")
    readonly_fields = (
        "id",
        "prompt_id",
        "comfyui_url",
        "seq",
        "preview_seq",
        "created_at",
        "updated_at",
        "finished_at",
    )
    actions = ("cancel_generations",)
    change_list_template = "admin/lockngen/generation/change_list.html"

    def delete_model(self, request: HttpRequest, obj: Generation) -> None:
        # As DELETE /api/generations/<id> does: its images and Redis keys go too.
        try:
            services.delete(obj)
        except services.Refused as refused:
            self.message_user(request, f"{str(obj.id)[:8]}: {refused.message}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        for row in queryset:
            self.delete_model(request, row)

    @admin.display(description="ID", ordering="id")
    def short_id(self, obj: Generation) -> str:
        return str(obj.id)[:8]

    @admin.display(description="Progress", ordering="progress")
    def progress_bar(self, obj: Generation) -> str:
        return format_html(
            '<progress value="{}" max="100" aria-label="Progress">{}%</progress> {}%',
            obj.progress,
            obj.progress,
            obj.progress,
        )

    @admin.display(description="Age", ordering="-created_at")
    def age(self, obj: Generation) -> str:
        seconds = int((timezone.now() - obj.created_at).total_seconds())
        if seconds < 60:
            return f"{max(seconds, 0)} s ago"
        return f"{timesince(obj.created_at, timezone.now(), depth=1)} ago"

    @admin.action(description="Cancel selected queued/running generations", permissions=["change"])
    def cancel_generations(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        cancelled, finished, failed = 0, 0, []
        for row in queryset:
            if not row.is_active:
                finished += 1
                continue
            # The service the cancel API uses, so the admin cancels exactly as users do.
            try:
                services.cancel(row)
                cancelled += 1
            except services.Refused as refused:
                if refused.status == 409:
                    finished += 1
                else:
                    failed.append(str(row.id)[:8])
        if cancelled:
            self.message_user(request, f"Asked ComfyUI to cancel {cancelled} generation(s).")
        if finished:
            self.message_user(
                request, f"{finished} generation(s) had already finished.", messages.WARNING
            )
        if failed:
            self.message_user(
                request,
                f"Could not cancel {', '.join(failed)} (ComfyUI unreachable?).",
                messages.ERROR,
            )

    # ------------------------------------------------------------------ Active generations

    def get_urls(self) -> list[Any]:
        info = (self.opts.app_label, self.opts.model_name)
        wrap = self.admin_site.admin_view  # staff only, logged in
        return [
            path("active/", wrap(self.active_view), name="{}_{}_active".format(*info)),
            path(
                "active.json", wrap(self.active_json_view), name="{}_{}_active_json".format(*info)
            ),
            *super().get_urls(),
        ]

    def active_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Active generations",
            "subtitle": None,
            "active_config": {
                "jsonUrl": reverse("admin:lockngen_generation_active_json"),
                "apiBase": "/api/generations",
                "wsPath": "/api/ws/progress",
                "canCancel": self.has_change_permission(request),
                "initial": active_rows_json(request),
            },
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/lockngen/generation/active.html", context)

    def active_json_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse({"results": active_rows_json(request)})


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at", "active")
    list_filter = (TokenStateFilter, "user")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_tokens",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a token is issued to its user once, in the clear; never typed in here

    @admin.display(description="Active", boolean=True)
    def active(self, obj: ApiToken) -> bool:
        return obj.is_active

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        # One by one, not update(): each revocation announces itself and closes its sockets.
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            token.revoke()
        self.message_user(request, f"Revoked {len(tokens)} token(s).")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Every user's endpoints; one failing for 24 hours shows as inactive."""

    list_display = ("url", "owner", "events_list", "active", "failing_since", "created_at")
    list_filter = ("active", "owner")
    list_select_related = ("owner",)
    search_fields = ("url", "owner__username")
    fields = ("owner", "url", "events", "active", "failing_since", "created_at")
    readonly_fields = ("owner", "failing_since", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made through the API, which shows the secret to its owner once

    @admin.display(description="Events")
    def events_list(self, obj: Webhook) -> str:
        return ", ".join(e.removeprefix("generation.") for e in obj.events)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "webhook",
        "event",
        "generation_id",
        "seq",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
    )
    list_filter = ("state", "event")
    list_select_related = ("webhook",)
    search_fields = ("message_id", "generation_id", "webhook__url")
    actions = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the sender's record; redeliver instead

    @admin.action(description="Redeliver selected (queued again, same webhook-id)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = outbox.redeliver(list(queryset))
        self.message_user(request, f"Queued {count} delivery(ies) again.")


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    list_display = ("created_at", "webhook", "delivery", "attempt", "status", "error")
    list_select_related = ("webhook", "delivery")
    list_filter = ("status",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
