"""The browser UI: the live gallery (the page itself; its data comes from the HTTP API and
``/api/ws/progress``)."""

from __future__ import annotations

import secrets

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

PAGE_SIZE = 20


@login_required
@ensure_csrf_cookie
def gallery(request: HttpRequest) -> HttpResponse:
    """The form and the grid; ``static/js/gallery/main.js`` fills and updates the grid live."""
    defaults = {"width": 512, "height": 512, "steps": 20, "seed": secrets.randbelow(2**31)}
    config = {
        "apiBase": "/api/generations",
        "wsPath": "/api/ws/progress",
        "loginUrl": f"{reverse('login')}?next={reverse('gallery')}",
        "pageSize": PAGE_SIZE,
        # Staff may see everyone's generations; the gallery shows the user's own.
        "username": request.user.get_username(),
    }
    return render(request, "gallery.html", {"defaults": defaults, "config": config})
