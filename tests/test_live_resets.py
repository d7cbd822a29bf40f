"""Zombie connections against real servers, uvicorn and daphne: clients that reset TCP in the middle
of a conversation, and a peer that neither reads nor answers pings. Whatever a send raises, the
connection's clean-up runs (hub, channels, presence), the open-connection count returns to the true
number, and no other connection loses an event or a control message."""
import asyncio
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect

from tests import factories
from tests.live import open_ready, recv_close, recv_json, subscribe
from tests.pressure import SERVERS, flood, metric, pressure_server, wait_for_metric
from tests.raw_websocket import RawWebSocket
from tests.test_live_hostile import assert_no_traceback
from tests.support import error_frame, presence_frame
from users import services as users

pytestmark = pytest.mark.slow

CONNECTION_LIMIT = 5
RESET_POINTS = ["after the upgrade request", "after the 101", "after a ping", "after a ping and a subscribe"]


@pytest.fixture(params=SERVERS)
def kind(request):
    return request.param


@pytest.fixture
def people(transactional_db):
    """ada's clients misbehave (with `ada_ws_key`; `ada_key` is for REST); bob owns the room and
    reads well; cy watches ada's presence."""
    ada, bob, cy = factories.make_user("ada"), factories.make_user("bob"), factories.make_user("cy")
    ws_key, ws_secret = users.api_key_create(user=ada, name="sockets")
    return SimpleNamespace(
        ada=ada, ada_key=factories.make_key(ada), ada_ws_key=ws_secret, ada_ws_key_id=ws_key.pk,
        bob_key=factories.make_key(bob), cy_key=factories.make_key(cy), room=factories.make_room(bob, "busy"),
    )


def reset_at(port: int, key: str, point: str, channel: str) -> None:
    """Open a raw connection and reset it (RST) at `point`."""
    raw = RawWebSocket(port, key)
    try:
        if point == "after the upgrade request":
            raw.send_upgrade()
        else:
            raw.open()
        if point in ("after a ping", "after a ping and a subscribe"):
            raw.send_json({"type": "ping", "ref": "p"})
        if point == "after a ping and a subscribe":
            raw.send_json({"type": "subscribe", "channel": channel, "ref": "s"})
    finally:
        raw.reset()


async def subscribed_raw(stack, port: int, key: str, channel: str) -> RawWebSocket:
    """A raw socket with a 4 KiB receive buffer, past `connected` and `subscribed`, closed with `stack`."""
    raw = RawWebSocket(port, key, receive_buffer=4096)
    stack.callback(raw.close)
    await asyncio.to_thread(raw.open)
    await asyncio.to_thread(raw.read_frames, 1)
    await asyncio.to_thread(raw.send_json, {"type": "subscribe", "channel": channel, "ref": "s"})
    await asyncio.to_thread(raw.read_frames, 1)
    return raw


async def wait_until_offline(watcher, user_id: int, seen: list[dict], timeout: float = 10) -> None:
    """Read the watcher's presence frames until the last one says offline; each must alternate
    online, offline, … from where `seen` left off (a user never goes online twice in a row)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not seen or seen[-1]["type"] != "user:offline":
        remaining = deadline - loop.time()
        assert remaining > 0, f"the watcher's last presence frame is {seen[-1:]}: ada still looks online"
        try:
            frame = await recv_json(watcher, timeout=remaining)
        except asyncio.TimeoutError:
            continue
        expected = "offline" if seen and seen[-1]["type"] == "user:online" else "online"
        assert frame == presence_frame(user_id, expected), (frame, seen[-3:])
        seen.append(frame)


async def test_tcp_resets_leave_no_zombies(kind, people):
    """Twenty connections reset TCP at every point of a conversation, some with a reply stuck behind
    full buffers: afterwards open connections are the true number, the user is offline and may open
    exactly the per-user limit again, another user still receives every event, and revoking the
    key closes all of the user's new sockets with 4001."""
    channel = f"room:{people.room.pk}"
    with pressure_server(
        kind, RETROCHAT_MAX_CONNECTIONS_PER_USER=str(CONNECTION_LIMIT), RETROCHAT_CLOSE_GRACE_SECONDS="1"
    ) as live:
        async with AsyncExitStack() as stack:
            bob = await open_ready(stack, live, people.bob_key)
            bob_subscribed = await subscribe(bob, channel)
            cy = await open_ready(stack, live, people.cy_key)
            assert (await subscribe(cy, f"user:{people.ada.pk}", "activity"))["presence"]["status"] == "offline"
            presence_seen: list[dict] = []

            # 16 resets, four at a time (under the limit of 5), at every point of the conversation.
            for _ in range(4):
                await asyncio.gather(*(
                    asyncio.to_thread(reset_at, live.port, people.ada_ws_key, point, channel) for point in RESET_POINTS
                ))
                await wait_for_metric(live, "retrochat_connections_open", 2)  # bob and cy

            # 4 more whose pong cannot be written: their buffers are full when they ping and reset,
            # so the reply is queued when the reset arrives and the send raises.
            stuck = []
            for _ in range(4):
                stuck.append(await subscribed_raw(stack, live.port, people.ada_ws_key, channel))
            bob_subscribed["offset"] += len(await flood(live, people.bob_key, people.room.pk, bob, bob_subscribed, 512 * 1024))
            for raw in stuck:
                await asyncio.to_thread(raw.send_json, {"type": "ping", "ref": "p"})
                raw.reset()
            await wait_for_metric(live, "retrochat_connections_open", 2)
            await wait_until_offline(cy, people.ada.pk, presence_seen)

            # The user is not stuck at CONNECTION_LIMIT: exactly the limit opens again.
            sockets = [await open_ready(stack, live, people.ada_ws_key) for _ in range(CONNECTION_LIMIT)]
            assert await recv_json(cy) == presence_frame(people.ada.pk, "online")
            async with connect(live.ws_url, additional_headers={"Authorization": f"Bearer {people.ada_ws_key}"}) as over:
                assert await recv_json(over) == error_frame("CONNECTION_LIMIT")
                assert await recv_close(over) == 4029
            await wait_for_metric(live, "retrochat_connections_open", 2 + CONNECTION_LIMIT)

            # Delivery to a well-behaved member: every event, in order.
            for n in range(5):
                status, created = await live.arequest("POST", f"/v1/rooms/{people.room.pk}/messages", people.bob_key, {"content": f"after {n}"})
                assert status == 201
                bob_subscribed["offset"] += 1
                assert await recv_json(bob) == {"type": "message:new", "channel": channel, "offset": bob_subscribed["offset"],
                                                "epoch": bob_subscribed["epoch"], "data": created}

            # Control still reaches every socket of the key.
            status, _ = await live.arequest("DELETE", f"/v1/api-keys/{people.ada_ws_key_id}", people.ada_key)
            assert status == 204
            for ws in sockets:
                assert await recv_json(ws) == error_frame("UNAUTHORIZED")
                assert await recv_close(ws) == 4001
            await wait_for_metric(live, "retrochat_connections_open", 2)
            assert await recv_json(cy) == presence_frame(people.ada.pk, "offline")
        assert_no_traceback(live)


async def test_heartbeat_drops_a_peer_that_never_reads(kind, people):
    """A raw client whose buffers are full and that never answers a ping is dropped by the
    heartbeat (no slow-consumer close: it is under both limits), even though the server can never
    flush the close: open connections return to the true number and the user goes offline."""
    channel = f"room:{people.room.pk}"
    env = {"RETROCHAT_HEARTBEAT_INTERVAL": "2", "RETROCHAT_HEARTBEAT_TIMEOUT": "2", "RETROCHAT_CLOSE_GRACE_SECONDS": "1"}
    with pressure_server(kind, **env) as live:
        async with AsyncExitStack() as stack:
            bob = await open_ready(stack, live, people.bob_key)
            bob_subscribed = await subscribe(bob, channel)
            cy = await open_ready(stack, live, people.cy_key)
            assert (await subscribe(cy, f"user:{people.ada.pk}", "activity"))["presence"]["status"] == "offline"
            raw = await subscribed_raw(stack, live.port, people.ada_ws_key, channel)
            assert await recv_json(cy) == presence_frame(people.ada.pk, "online")

            await flood(live, people.bob_key, people.room.pk, bob, bob_subscribed, 512 * 1024)
            await wait_for_metric(live, "retrochat_connections_open", 2, timeout=20)
            assert await recv_json(cy, timeout=10) == presence_frame(people.ada.pk, "offline")
            assert metric(live, "retrochat_slow_consumer_closes_total") == 0

            received = await asyncio.to_thread(raw.read_until_ended, 15, answer_close=False)
            assert received.ended in ("eof", "reset"), received.ended
            assert [text["type"] for text in received.texts()[:2]] == ["connected", "subscribed"]
        assert_no_traceback(live)
