"""Slow consumers against real servers, uvicorn and daphne: a client that stops
reading is closed with 4008 (or, if it never reads its close either, its transport is aborted),
while everybody else's events keep arriving one by one; the server's memory and connection count
stay bounded."""
import asyncio
import json
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest

from tests import factories
from tests.live import open_ready, recv_json, subscribe
from tests.pressure import SERVERS, flood, metric, pressure_server, wait_for_metric
from tests.raw_websocket import OP_TEXT, RawWebSocket, Received
from tests.support import TIMESTAMP, error_frame

pytestmark = pytest.mark.slow

SLOW_RECEIVE_BUFFER = 4096
# The byte limit of the servers that close by bytes, a quarter of the default, and a flood that
# leaves about three times that queued past the buffers a peer that does not read still fills
# (about 200 KiB: the kernel's send buffer, the server's transport buffer): as the default limit
# and a 3 MiB flood did, in a third of the events.
PENDING_LIMIT = {"RETROCHAT_MAX_PENDING_BYTES": str(256 * 1024)}
FLOOD_BYTES = 1024 * 1024


@pytest.fixture(params=SERVERS)
def kind(request):
    return request.param


@pytest.fixture
def people(transactional_db):
    """ada reads slowly; bob owns the busy room and reads well; cy watches ada's presence."""
    ada, bob, cy = factories.make_user("ada"), factories.make_user("bob"), factories.make_user("cy")
    return SimpleNamespace(
        ada=ada, ada_key=factories.make_key(ada), bob_key=factories.make_key(bob), cy_key=factories.make_key(cy),
        room=factories.make_room(bob, "busy"),
    )


def offline_frame(user_id: int) -> dict:
    channel = f"user:{user_id}"
    return {"type": "user:offline", "channel": channel, "data": {"user_id": f"user_{user_id}", "status": "offline", "timestamp": TIMESTAMP}}


def online_frame(user_id: int) -> dict:
    channel = f"user:{user_id}"
    return {"type": "user:online", "channel": channel, "data": {"user_id": f"user_{user_id}", "status": "online", "timestamp": TIMESTAMP}}


async def open_slow_reader(port: int, key: str, channel: str) -> tuple[RawWebSocket, dict]:
    """A raw client with a 4 KiB receive buffer, subscribed to `channel`; it reads nothing more."""
    raw = RawWebSocket(port, key, receive_buffer=SLOW_RECEIVE_BUFFER)
    await asyncio.to_thread(raw.open)
    (connected,) = await asyncio.to_thread(raw.read_frames, 1)
    assert connected["type"] == "connected", connected
    await asyncio.to_thread(raw.send_json, {"type": "subscribe", "channel": channel, "ref": "s"})
    (subscribed,) = await asyncio.to_thread(raw.read_frames, 1)
    return raw, subscribed


def assert_prefix_of(received: list[dict], flooded: list[str], *, at_least: int = 1) -> None:
    """The events a slow reader got are the first ones published, in order, none missing, and not all."""
    assert at_least <= len(received) < len(flooded), (len(received), len(flooded))
    assert received == [json.loads(text) for text in flooded[: len(received)]]


async def test_a_slow_reader_is_closed_4008_while_another_users_events_flow(kind, people):
    """A raw client with a 4 KiB receive buffer subscribed to a busy room never reads while 1 MiB of
    events flow (four times the byte limit): another user's events still arrive one by one, and the slow socket is closed with
    4008 (the close grace is long, so the error and the close frame wait for it to read again)."""
    channel = f"room:{people.room.pk}"
    with pressure_server(kind, RETROCHAT_CLOSE_GRACE_SECONDS="30", **PENDING_LIMIT) as live:
        async with AsyncExitStack() as stack:
            bob = await open_ready(stack, live, people.bob_key)
            bob_subscribed = await subscribe(bob, channel)
            raw, subscribed = await open_slow_reader(live.port, people.ada_key, channel)
            stack.callback(raw.close)
            assert subscribed == {"type": "subscribed", "channel": channel, "event": "*", "ref": "s",
                                  "offset": bob_subscribed["offset"], "epoch": bob_subscribed["epoch"]}

            flooded = await flood(live, people.bob_key, people.room.pk, bob, bob_subscribed, FLOOD_BYTES)
            assert await wait_for_metric(live, "retrochat_slow_consumer_closes_total", 1) == 1

            received: Received = await asyncio.to_thread(raw.read_until_ended, 15)
            texts = received.texts()
            assert_prefix_of(texts[2:-1], flooded)
            assert texts[-1] == error_frame("SLOW_CONSUMER")
            assert [opcode for opcode, _ in received.frames if opcode != 0x9][-2:] == [OP_TEXT, 0x8]  # nothing after the close
            assert received.close_code() == 4008
            # After the closing handshake the server drops TCP: uvicorn closes it (EOF), autobahn
            # (daphne) aborts it, as a server, by design (RST).
            assert received.ended == {"uvicorn": "eof", "daphne": "reset"}[kind]

            await wait_for_metric(live, "retrochat_connections_open", 1)  # bob
            assert metric(live, "retrochat_slow_consumer_closes_total") == 1


async def test_a_reader_that_never_reads_again_is_aborted_and_goes_offline(kind, people):
    """The same slow reader, with a 1 s close grace, never reads even its close: the server aborts
    the transport. Open connections return to the true number and the user goes offline."""
    channel = f"room:{people.room.pk}"
    with pressure_server(kind, RETROCHAT_CLOSE_GRACE_SECONDS="1", **PENDING_LIMIT) as live:
        async with AsyncExitStack() as stack:
            bob = await open_ready(stack, live, people.bob_key)
            bob_subscribed = await subscribe(bob, channel)
            cy = await open_ready(stack, live, people.cy_key)
            assert (await subscribe(cy, f"user:{people.ada.pk}", "activity"))["presence"]["status"] == "offline"
            raw, _ = await open_slow_reader(live.port, people.ada_key, channel)
            stack.callback(raw.close)
            assert await recv_json(cy) == online_frame(people.ada.pk)

            flooded = await flood(live, people.bob_key, people.room.pk, bob, bob_subscribed, FLOOD_BYTES)
            assert await wait_for_metric(live, "retrochat_slow_consumer_closes_total", 1) == 1
            await wait_for_metric(live, "retrochat_connections_open", 2)  # bob and cy
            assert await recv_json(cy, timeout=10) == offline_frame(people.ada.pk)

            # Only now does the client look: what its buffers held (if the abort left it), then
            # the end of the TCP connection, with no close frame (the server never got to write it).
            received = await asyncio.to_thread(raw.read_until_ended, 15, answer_close=False)
            assert received.ended in ("eof", "reset"), received.ended
            assert received.close_code() is None
            # Twisted aborts with RST, which discards what the client's kernel held: maybe nothing.
            assert_prefix_of(received.texts()[2:], flooded, at_least=0)


async def test_a_frame_queued_too_long_makes_a_slow_consumer(kind, people):
    """RETROCHAT_MAX_PENDING_SECONDS=2: a reader whose socket buffers are full, with far less than
    the byte limit queued, is closed once its oldest queued frame is 2 s old, and aborted after the
    grace since it reads nothing."""
    channel = f"room:{people.room.pk}"
    env = {"RETROCHAT_MAX_PENDING_SECONDS": "2", "RETROCHAT_MAX_PENDING_BYTES": str(64 * 1024 * 1024), "RETROCHAT_CLOSE_GRACE_SECONDS": "1"}
    with pressure_server(kind, **env) as live:
        async with AsyncExitStack() as stack:
            bob = await open_ready(stack, live, people.bob_key)
            bob_subscribed = await subscribe(bob, channel)
            raw, _ = await open_slow_reader(live.port, people.ada_key, channel)
            stack.callback(raw.close)

            # Enough to fill the kernel's buffers and the server's transport buffer, and to leave
            # some frames queued in the outbox: a small part of the 64 MiB limit.
            flooded = await flood(live, people.bob_key, people.room.pk, bob, bob_subscribed, 768 * 1024)
            assert await wait_for_metric(live, "retrochat_slow_consumer_closes_total", 1) == 1
            await wait_for_metric(live, "retrochat_connections_open", 1)  # bob

            received = await asyncio.to_thread(raw.read_until_ended, 15, answer_close=False)
            assert received.ended in ("eof", "reset"), received.ended
            assert received.close_code() is None
            # Twisted aborts with RST, which discards what the client's kernel held: maybe nothing.
            assert_prefix_of(received.texts()[2:], flooded, at_least=0)
