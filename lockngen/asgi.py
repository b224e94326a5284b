"""ASGI entry point: ``daphne lockngen.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lockngen.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from generations.auth import websocket_auth  # noqa: E402
from lockngen import daphne_options  # noqa: E402
from progress.routing import websocket_urlpatterns  # noqa: E402
from progress.wire import expose_protocol  # noqa: E402

daphne_options.install()  # protocol errors close with their code, not a dropped socket

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session or bearer token, and the Origin check (a missing Origin is a non-browser
        # client, which must then bring a token): see generations/auth.py.
        # expose_protocol is outermost: it alone sees daphne's own send, and finds the
        # socket's protocol behind it for the fast path of relayed messages (progress/wire.py).
        "websocket": expose_protocol(websocket_auth(URLRouter(websocket_urlpatterns))),
    }
)
