"""Helpers for live tests of peers that do not read, reset or vanish: a server of
either kind, /metrics as a client reads it, and a flood of events that a good reader must keep
receiving one by one."""
import asyncio
import json
import re
import time
import urllib.request
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.live import RECV_TIMEOUT, LiveServer

SERVERS = ["uvicorn", "daphne"]
# Message content of 4000 characters of 4 bytes each in UTF-8: 16 kB frames on the wire (event
# frames are not ASCII-escaped), so that byte limits are exercised in bytes, not characters.
WIDE_CONTENT = "\U0001f600" * 4000


def pressure_server(kind: str, **env: str) -> LiveServer:
    """A server of `kind` (RETROCHAT_SERVER) without the write throttle. Its own Redis prefix (when
    REDIS_URL is set) keeps other processes out of its /metrics sums and presence registry."""
    return LiveServer(
        RETROCHAT_SERVER=kind, RETROCHAT_WRITE_THROTTLE="off", RETROCHAT_REDIS_PREFIX=f"rc-pressure-{uuid.uuid4().hex[:8]}", **env
    )


def metric(server: LiveServer, name: str) -> float:
    """The value of an unlabelled series on /metrics."""
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not on /metrics:\n{text}"
    return float(found.group(1))


async def wait_for_metric(server: LiveServer, name: str, wanted: float, *, at_least: bool = False, timeout: float = 15) -> float:
    """Poll /metrics until `name` equals `wanted` (or reaches it, with `at_least`); its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(metric, server, name)
        if value == wanted or (at_least and value >= wanted):
            return value
        assert time.monotonic() < deadline, f"{name} is {value}, not {'≥ ' if at_least else ''}{wanted}, after {timeout}s"
        await asyncio.sleep(0.1)


async def flood(
    server: LiveServer, key: str, room_id: int, reader: ClientConnection, subscribed: dict[str, Any], total_bytes: int
) -> list[str]:
    """Post wide messages to the room until `total_bytes` of event frames went out. `reader`, subscribed
    to the room (its `subscribed` reply given), must receive each event, exactly, before the next is
    posted: a peer that does not read never holds up delivery to another. The frames' texts."""
    channel = subscribed["channel"]
    offset, texts, sent = subscribed["offset"], [], 0
    while sent < total_bytes:
        status, created = await server.arequest("POST", f"/v1/rooms/{room_id}/messages", key, {"content": WIDE_CONTENT})
        assert status == 201, created
        offset += 1
        text = await asyncio.wait_for(reader.recv(), RECV_TIMEOUT)
        expected = {"type": "message:new", "channel": channel, "offset": offset, "epoch": subscribed["epoch"], "data": created}
        assert json.loads(text) == expected, f"event {len(texts)} did not reach the good reader"
        texts.append(text)
        sent += len(text.encode())
    return texts
