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


# Channels' URLRouter takes Django's path() with ASGI applications; django-stubs' path() only knows
# views, and types-channels' URLRouter wants its own pattern type: a gap between the two stubs.
websocket_application = URLRouter(
    [
        path("v1/realtime", RealtimeConsumer.as_asgi()),  # type: ignore[arg-type, list-item]
        re_path(r"", RejectUnknownPath.as_asgi()),  # type: ignore[arg-type, list-item]
    ]
)
