"""ASGI entry point: ``daphne lockngen.asgi:application``."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lockngen.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from generations.ws_auth import WebsocketAuth  # noqa: E402
from lockngen import daphne_inbox, daphne_options  # noqa: E402
from progress.routing import websocket_routes  # noqa: E402
from progress.wire import expose_protocol  # noqa: E402

daphne_options.install()  # protocol errors close with their code, not a dropped socket
daphne_inbox.install()  # a WebSocket's inbox without asyncio.Queue's four deques

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Route, Origin check, session or bearer token in one middleware (a missing Origin
        # is a non-browser client, which must then bring a token): generations/ws_auth.py.
        # expose_protocol is outermost: it alone sees daphne's own send, and finds the
        # socket's protocol behind it for the fast path of relayed messages (progress/wire.py).
        "websocket": expose_protocol(WebsocketAuth(websocket_routes)),
    }
)

# What is loaded by now (Django, the apps, the URLconf: most of the process's objects) lives
# as long as the process: out of the garbage collector's full passes, which otherwise walk it
# all again and again (daphne's gen-2 collections took 40-190 ms with 1,000 sockets open).
gc.freeze()
