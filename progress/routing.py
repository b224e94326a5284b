"""The WebSocket routes: exact paths, each to the consumer class made for every socket."""

from progress.consumers import ProgressConsumer

websocket_routes = {"/api/ws/progress": ProgressConsumer}
