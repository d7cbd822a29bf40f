"""Baseline "naive": the Channels tutorial design, as most Channels apps are written.

AsyncJsonWebsocketConsumer, one channel-layer channel per connection, `group_add` per subscription,
`group_send` to publish and `send_json` (one JSON encoding per recipient) to deliver, on
channels-redis' RedisPubSubChannelLayer, served by daphne:

    REDIS_URL=redis://127.0.0.1:6379/12 daphne -p 9201 --root-path '' bench.baselines.naive.app:application

WebSocket and publish frames are the same as the bare baseline's (bench/baselines/bare/server.py).
"""
import json
import os
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    ROOT_URLCONF=__name__,
    DATABASES={},
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12"), "max_connections": 20000}],
                "prefix": "bench-naive",
            },
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def group_for(channel: str) -> str:
    return channel.replace(":", "_")


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content.get("type") == "subscribe":
            await self.channel_layer.group_add(group_for(content["channel"]), self.channel_name)
            await self.send_json({"type": "subscribed", "channel": content["channel"]})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message:new", "channel": event["channel"], "data": event["data"]})


@csrf_exempt
async def publish(request: HttpRequest, channel: str) -> HttpResponse:
    data = json.loads(request.body)
    await get_channel_layer().group_send(group_for(channel), {"type": "chat.message", "channel": channel, "data": data})
    return HttpResponse(status=204)


urlpatterns = [path("publish/<str:channel>", publish)]

application = ProtocolTypeRouter(
    {"http": get_asgi_application(), "websocket": URLRouter([path("ws", ChatConsumer.as_asgi())])}
)
