from django.contrib import admin
from django.urls import path

from lockngen import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/generations", api.create_generation, name="generation-create"),
    path("api/generations/<uuid:generation_id>", api.generation_detail, name="generation"),
    path(
        "api/generations/<uuid:generation_id>/preview",
        api.generation_preview,
        name="generation-preview",
    ),
    path(
        "api/generations/<uuid:generation_id>/images/<str:name>",
        api.generation_image,
        name="generation-image",
    ),
]
