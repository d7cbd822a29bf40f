"""Listening to the channel layer in tests, the way the WebSocket consumer does.

`LayerListener` joins the groups of the given channels under one channel-layer name and decodes
what arrives. It checks every logged event's stream position as it goes (each channel's offsets
follow one another with no gap, under one epoch) and returns frames without `offset`/`epoch`, so
that tests compare the rest of each frame exactly; tests of the positions themselves read them
from `positions`. Changes must be made from the same event loop (async tests calling sync code
through `database_sync_to_async`, or `AsyncClient`), so that the on-commit publish reaches the same
layer instance: with Redis that is one real pub/sub round trip.
"""
import asyncio
import json
from typing import Any

from channels.layers import get_channel_layer

from realtime.channel_names import parse_channel


class LayerListener:
    def __init__(self, *channels: str) -> None:
        self.channels = [parse_channel(name) for name in channels]
        assert all(self.channels), f"malformed channel in {channels}"
        self.groups = [channel.group for channel in self.channels]
        self.positions: dict[str, list[tuple[str, int]]] = {}  # channel → (epoch, offset) seen, in order

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
        frame = json.loads(message["text"])
        if "offset" in frame:
            seen = self.positions.setdefault(frame["channel"], [])
            epoch, offset = frame.pop("epoch"), frame.pop("offset")
            assert isinstance(epoch, str) and epoch and isinstance(offset, int) and offset > 0, (epoch, offset)
            assert (message["offset"], message["epoch"]) == (offset, epoch), "layer message and frame disagree"
            if seen:
                assert (epoch, offset) == (seen[-1][0], seen[-1][1] + 1), f"{frame['channel']}: {seen[-1]} then {(epoch, offset)}"
            seen.append((epoch, offset))
        return frame
