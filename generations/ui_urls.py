"""The browser UI's URLs (included at the root by ``lockngen/urls.py``)."""

from django.urls import include, path

from generations import views
from generations.login_throttle import ThrottledLoginView

urlpatterns = [
    path("", views.gallery, name="gallery"),
    # Before Django's own: the same page, with the lockout's message and 429.
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
]
