from django.contrib import admin
from django.urls import include, path

from generations import api, tokens_api, webhooks_api
from lockngen import asyncapi, openapi
from lockngen.health import healthz
from lockngen.metrics_view import metrics_view
from progress import sse

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/openapi.json", openapi.openapi_json, name="openapi"),
    path("api/asyncapi.json", asyncapi.asyncapi_json, name="asyncapi"),
    path("api/generations", api.generations, name="generations"),
    path("api/generations/<uuid:generation_id>", api.generation, name="generation"),
    path("api/generations/<uuid:generation_id>/cancel", api.cancel, name="generation-cancel"),
    path("api/generations/<uuid:generation_id>/preview", api.preview, name="generation-preview"),
    path(
        "api/generations/<uuid:generation_id>/images/<str:name>",
        api.image,
        name="generation-image",
    ),
    path("api/tokens", tokens_api.tokens, name="tokens"),
    path("api/tokens/<int:token_id>", tokens_api.token, name="token"),
    path("api/generations/<uuid:generation_id>/events", sse.generation_events, name="events-one"),
    path("api/events", sse.all_events, name="events"),
    path("api/webhooks", webhooks_api.webhooks, name="webhooks"),
    path("api/webhooks/<uuid:webhook_id>", webhooks_api.webhook, name="webhook"),
    path(
        "api/webhooks/<uuid:webhook_id>/deliveries",
        webhooks_api.deliveries,
        name="webhook-deliveries",
    ),
    path("api/webhooks/<uuid:webhook_id>/test", webhooks_api.test, name="webhook-test"),
    path("", include("generations.ui_urls")),
]

handler400 = "lockngen.error_pages.bad_request"
handler404 = "lockngen.error_pages.not_found"
handler500 = "lockngen.error_pages.server_error"
