"""Listening to the channel layer in tests, the way the WebSocket consumer does.

`LayerListener` joins every category group of the given channels under one channel-layer name and
decodes what arrives. Changes must be made from the same event loop (async tests calling sync code
through `database_sync_to_async`, or `AsyncClient`), so that the on-commit publish reaches the same
layer instance: with Redis that is one real pub/sub round trip.
"""
import asyncio
import json
from typing import Any

from channels.layers import get_channel_layer

from realtime.channel_names import parse_channel

SILENCE_SECONDS = 0.3


class LayerListener:
    def __init__(self, *channels: str) -> None:
        self.channels = [parse_channel(name) for name in channels]
        assert all(self.channels), f"malformed channel in {channels}"
        self.groups = [channel.group(category) for channel in self.channels for category in channel.categories]

    async def __aenter__(self) -> "LayerListener":
        self.layer = get_channel_layer()
        self.name = await self.layer.new_channel()
        for group in self.groups:
            await self.layer.group_add(group, self.name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for group in self.groups:
            await self.layer.group_discard(group, self.name)

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.layer.receive(self.name), timeout)
        return json.loads(message["text"])

    async def events(self, count: int) -> list[dict[str, Any]]:
        return [await self.next_event() for _ in range(count)]

    async def assert_silent(self, seconds: float = SILENCE_SECONDS) -> None:
        try:
            message = await asyncio.wait_for(self.layer.receive(self.name), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected event: {message.get('text')}")
