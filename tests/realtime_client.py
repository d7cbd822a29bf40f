"""Talking to /v1/realtime in consumer tests: the real ASGI application through WebsocketCommunicator.

`connected(key)` opens an authenticated socket, checks the `connected` frame and always closes the
socket at the end, so that no consumer task outlives its test. `opened(...)` does the same for
handshakes a test wants to watch from the very first message.
"""
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from retrochat.asgi import application
from rooms import services as room_services
from tests import factories
from tests.support import TIMESTAMP

PATH = "/v1/realtime"
FRAME_TIMEOUT = 2.0  # for frames that must arrive
SILENCE_SECONDS = 0.3  # for proving that nothing arrives, where no sentinel can
SENTINEL = "sentinel"
_sentinel_rooms = itertools.count(1)

sync = database_sync_to_async

async def make_sentinel(author: Any, *, room: Any = None, conversation: Any = None, event: str = "message:new") -> tuple[str, str]:
    """Make a known change on a channel a socket follows, to prove that nothing arrived before it
    without waiting: the hub hands a socket what the channel layer carries in publish order, so
    anything sent to it earlier comes first. The change is a message by `author` in `room` or
    `conversation`, or with `event="room:updated"` a new topic for `room`, or with
    "message:deleted" a message posted and deleted. Returns (event type, data id) for `assert_next_is`."""
    return event, await sync(_sentinel_change)(author, room, conversation, event)


def _sentinel_change(author: Any, room: Any, conversation: Any, event: str) -> str:
    if event == "room:updated":
        room.refresh_from_db()
        room_services.room_update(room=room, topic=f"{SENTINEL} {room.topic}"[:200])
        return f"room_{room.pk}"
    message = factories.make_message(author, room=room, conversation=conversation, content=SENTINEL)
    message_id = f"msg_{message.pk}"
    if event == "message:deleted":
        room_services.message_delete(message=message)
    return message_id


def bearer(key: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {key}".encode())


class Socket:
    """One client connection."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.hello: dict[str, Any] = {}

    async def open(self) -> tuple[bool, str | int | None]:
        """The handshake: (True, chosen subprotocol) when accepted, (False, close code) when refused."""
        return await self.communicator.connect(timeout=FRAME_TIMEOUT)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_to(bytes_data=data)

    async def receive(self) -> dict[str, Any]:
        # One receive at a time per socket: Channels' communicator patches `close_old_connections`
        # around each receive, and overlapping patches leave it patched (leaking DB connections).
        return await self.communicator.receive_json_from(timeout=FRAME_TIMEOUT)

    async def receive_text(self) -> str:
        return await self.communicator.receive_from(timeout=FRAME_TIMEOUT)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self.send(frame)
        return await self.receive()

    async def subscribe(self, channel: str, event: str | None = None) -> dict[str, Any]:
        frame = {"type": "subscribe", "channel": channel}
        if event is not None:
            frame["event"] = event
        reply = await self.request(frame)
        assert reply["type"] == "subscribed", reply
        return reply

    async def close_code(self) -> int:
        """The code of the close the server sends next (after any frame already read)."""
        message = await self.communicator.receive_output(timeout=FRAME_TIMEOUT)
        assert message["type"] == "websocket.close", message
        return message.get("code", 1000)

    async def assert_next_is(self, sentinel: tuple[str, str]) -> None:
        """The very next frame is the sentinel's event (`make_sentinel`): nothing arrived before it."""
        frame = await self.receive()
        assert (frame.get("type"), frame.get("data", {}).get("id")) == sentinel, f"expected the sentinel {sentinel}, got {frame}"

    async def assert_next_is_sentinel(self, author: Any, **where: Any) -> None:
        """Nothing arrived before now, proved without waiting (see `make_sentinel`)."""
        await self.assert_next_is(await make_sentinel(author, **where))

    async def assert_next_is_sentinel_elsewhere(self, owner: Any) -> None:
        """Nothing arrived before now, for a socket that follows no channel a sentinel could use
        (or has lost access to it): it subscribes to a new public room of `owner` and gets that
        room's sentinel as its very next frame."""
        room = await sync(factories.make_room)(owner, f"{SENTINEL} {next(_sentinel_rooms)}")
        await self.subscribe(f"room:{room.pk}")
        await self.assert_next_is_sentinel(owner, room=room)

    async def assert_silent(self) -> None:
        """Nothing arrives for SILENCE_SECONDS: only where no sentinel event can prove it (tests/support.py)."""
        if not await self.communicator.receive_nothing(timeout=SILENCE_SECONDS):
            unexpected = await self.communicator.receive_output(timeout=FRAME_TIMEOUT)
            raise AssertionError(f"unexpected output: {unexpected}")

    async def assert_alive(self) -> None:
        """The connection still answers: a ping gets its pong."""
        reply = await self.request({"type": "ping", "ref": "alive?"})
        assert reply == {"type": "pong", "ref": "alive?", "server_time": TIMESTAMP}

    async def disconnect(self) -> None:
        future = self.communicator.future
        if future.done():  # the application already ended (or a timed-out receive cancelled it)
            if not future.cancelled():
                future.result()  # surface a crash of the consumer
            return
        await self.communicator.disconnect(timeout=FRAME_TIMEOUT)


@asynccontextmanager
async def opened(
    headers: Sequence[tuple[bytes, bytes]] = (), *, subprotocols: list[str] | None = None, path: str = PATH
) -> AsyncIterator[Socket]:
    """A socket whose handshake the test drives itself (`await socket.open()`); closed at the end."""
    socket = Socket(WebsocketCommunicator(application, path, headers=list(headers), subprotocols=subprotocols))
    try:
        yield socket
    finally:
        await socket.disconnect()


@asynccontextmanager
async def connected(key: str) -> AsyncIterator[Socket]:
    """A socket authenticated with an API key, past its `connected` frame."""
    async with opened([bearer(key)]) as socket:
        accepted, _ = await socket.open()
        assert accepted
        socket.hello = await socket.receive()
        assert socket.hello["type"] == "connected", socket.hello
        yield socket
