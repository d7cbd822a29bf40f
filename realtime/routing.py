"""WebSocket routing: /v1/realtime is the only WebSocket endpoint; any other path is refused."""
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path, re_path

from realtime.consumer import RealtimeConsumer


class RejectUnknownPath(AsyncWebsocketConsumer):
    """Refuse the handshake (HTTP 403) instead of raising "No route found" into the server log."""

    channel_layer_alias = "retrochat.no-per-connection-channel"

    async def connect(self) -> None:
        await self.close()


websocket_application = URLRouter(
    [
        path("v1/realtime", RealtimeConsumer.as_asgi()),
        re_path(r"", RejectUnknownPath.as_asgi()),
    ]
)
