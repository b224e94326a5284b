"""The browser UI's URLs (included at the root by ``lockngen/urls.py``)."""

from django.urls import include, path

from lockngen import views

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("accounts/", include("django.contrib.auth.urls")),
]
