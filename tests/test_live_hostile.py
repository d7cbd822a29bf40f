"""Hostile clients against the real server: every bad input gets its documented
answer, the connection survives what the spec says it survives, and the server log stays free of
tracebacks."""
import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import time
from contextlib import AsyncExitStack, suppress
from functools import partial
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests import factories
from tests.live import (
    LiveServer,
    assert_next_is_sentinel_elsewhere,
    open_ready,
    recv_close,
    recv_json,
    request_reply,
    send_json,
    subscribe,
)
from tests.support import TIMESTAMP, error_frame, pong_frame, request_when_allowed, subscribed_frame

pytestmark = pytest.mark.slow

ROOM_FILTERS = ["*", "message", "room", "message:new", "message:updated", "message:deleted", "room:updated", "room:deleted"]


@pytest.fixture
def target(transactional_db):
    mallory = factories.make_user("mallory")
    return SimpleNamespace(user=mallory, key=factories.make_key(mallory), room=factories.make_room(mallory, "lobby"))


@pytest.fixture
def many_rooms(target):
    """25 rooms × 8 event filters: 200 distinct subscriptions."""
    target.rooms = [target.room, *(factories.make_room(target.user, f"room {n}") for n in range(24))]
    return target


@pytest.fixture
def heartbeat_users(transactional_db):
    silent, lively = factories.make_user("silent"), factories.make_user("lively")
    return SimpleNamespace(silent=silent, silent_key=factories.make_key(silent), lively_key=factories.make_key(lively))


@pytest.fixture(scope="module")
def roomy_server(django_db_setup, django_db_blocker):
    """A server with a 1 MiB frame limit and no practical frame rate limit (default 100 subscriptions)."""
    with LiveServer(
        RETROCHAT_WRITE_THROTTLE="off", RETROCHAT_MAX_FRAME_BYTES="1048576",
        RETROCHAT_RATE_PER_SECOND="100000", RETROCHAT_RATE_BURST="100000",
    ) as live:
        yield live


def log_mark(server: LiveServer) -> int:
    return len(server.log())


def assert_no_traceback(server: LiveServer, since: int = 0) -> None:
    """No traceback in the server's log (since `since`, so that a failure names its own test)."""
    log = server.log()[since:]
    assert "Traceback" not in log, log[-5000:]


def hostile_cases(room_id: int, user_id: int) -> list[tuple[str, str | bytes, dict]]:
    """(label, what is sent, the exact reply)."""
    room = f"room:{room_id}"

    def sub(channel: object, **extra: object) -> str:
        return json.dumps({"type": "subscribe", "channel": channel, "ref": "s", **extra})

    invalid_channel = error_frame("INVALID_CHANNEL", "s")
    malformed_channels = [
        "room:", "room:0", "room:-1", "room:abc", "room:1e3", "room:１", "room:١", "room:1:2", "room:1\n", "lobby:1",
        "room:" + "9" * 96, "", ":", "room", "ROOM:1", " room:1", "room: 1", "room:+1", "room:01", "room:1.0", "room:0x1",
        "room:user_1", "room:room_", "room:room_0", "user:0", "conversation:-5", "room:" + "9" * 20, "room:1\x00",
        f"{room} ", f"room:{room_id}\t",
    ]
    assert len("room:" + "9" * 96) == 101
    cases: list[tuple[str, str | bytes, dict]] = [
        ("text that is not JSON", "hello", error_frame("INVALID_JSON")),
        ("empty text", "", error_frame("INVALID_JSON")),
        ("truncated JSON", '{"type":"ping"', error_frame("INVALID_JSON")),
        ("two JSON values", '{"type":"ping"} {"type":"ping"}', error_frame("INVALID_JSON")),
        ("binary frame", b'{"type":"ping","ref":"b"}', error_frame("INVALID_FRAME")),
        ("binary garbage", b"\x00\xff\xfe", error_frame("INVALID_FRAME")),
        ("JSON array", '[{"type":"ping"}]', error_frame("INVALID_FRAME")),
        ("JSON number", "42", error_frame("INVALID_FRAME")),
        ("JSON string", '"ping"', error_frame("INVALID_FRAME")),
        ("JSON null", "null", error_frame("INVALID_FRAME")),
        ("JSON true", "true", error_frame("INVALID_FRAME")),
        ("empty object", "{}", error_frame("INVALID_FRAME")),
        ("missing type", '{"ref":"a"}', error_frame("INVALID_FRAME", "a")),
        ("null type", '{"type":null,"ref":"a"}', error_frame("INVALID_FRAME", "a")),
        ("number type", '{"type":5,"ref":"a"}', error_frame("INVALID_FRAME", "a")),
        ("list type", '{"type":["ping"],"ref":"a"}', error_frame("INVALID_FRAME", "a")),
        ("bool type", '{"type":true,"ref":"a"}', error_frame("INVALID_FRAME", "a")),
        ("unknown type", '{"type":"publish","ref":"a"}', error_frame("UNKNOWN_TYPE", "a")),
        ("type in capitals", '{"type":"PING","ref":"a"}', error_frame("UNKNOWN_TYPE", "a")),
        ("empty type", '{"type":"","ref":"a"}', error_frame("UNKNOWN_TYPE", "a")),
        ("subscribe without channel", '{"type":"subscribe","ref":"s"}', error_frame("INVALID_FRAME", "s")),
        ("channel is a number", sub(5), error_frame("INVALID_FRAME", "s")),
        ("channel is a list", sub([room]), error_frame("INVALID_FRAME", "s")),
        ("channel is an object", sub({"room": room_id}), error_frame("INVALID_FRAME", "s")),
        ("unsubscribe channel is a number", json.dumps({"type": "unsubscribe", "channel": room_id, "ref": "s"}), error_frame("INVALID_FRAME", "s")),
        *[(f"malformed channel {name!r}", sub(name), invalid_channel) for name in malformed_channels],
        ("unsubscribe malformed channel", json.dumps({"type": "unsubscribe", "channel": "room:0", "ref": "s"}), invalid_channel),
        ("unknown event filter", sub(room, event="bogus"), error_frame("INVALID_EVENT", "s")),
        ("empty event filter", sub(room, event=""), error_frame("INVALID_EVENT", "s")),
        ("event filter in capitals", sub(room, event="MESSAGE"), error_frame("INVALID_EVENT", "s")),
        ("activity category on a conversation", sub("conversation:1", event="activity"), error_frame("INVALID_EVENT", "s")),
        ("user feed event on a room", sub(room, event="room:created"), error_frame("INVALID_EVENT", "s")),
        ("message category on a user", sub(f"user:{user_id}", event="message"), error_frame("INVALID_EVENT", "s")),
        ("room category on a conversation", sub("conversation:1", event="room"), error_frame("INVALID_EVENT", "s")),
        ("unsubscribe unknown event", json.dumps({"type": "unsubscribe", "channel": room, "event": "nope", "ref": "s"}), error_frame("INVALID_EVENT", "s")),
        ("event is a number", sub(room, event=1), error_frame("INVALID_FRAME", "s")),
        ("ref is an object", '{"type":"ping","ref":{"a":1}}', error_frame("INVALID_FRAME")),
        ("ref is a list", '{"type":"ping","ref":[1]}', error_frame("INVALID_FRAME")),
        ("ref is a bool", '{"type":"ping","ref":true}', error_frame("INVALID_FRAME")),
        ("ref is a float", '{"type":"ping","ref":1.5}', error_frame("INVALID_FRAME")),
        ("ref too long", json.dumps({"type": "ping", "ref": "r" * 65}), error_frame("INVALID_FRAME")),
        ("ref number too long", '{"type":"ping","ref":' + "9" * 65 + "}", error_frame("INVALID_FRAME")),
        ("ref at the length limit", json.dumps({"type": "ping", "ref": "r" * 64}), pong_frame("r" * 64)),
        ("integer ref", '{"type":"ping","ref":0}', pong_frame(0)),
        ("NaN", '{"type":"ping","ref":NaN}', error_frame("INVALID_JSON")),
        ("Infinity", '{"type":"ping","x":Infinity}', error_frame("INVALID_JSON")),
        ("-Infinity", '{"type":"ping","x":-Infinity}', error_frame("INVALID_JSON")),
        ("32,000 nested arrays", "[" * 32_000 + "]" * 32_000, error_frame("INVALID_JSON")),
        ("10,000 nested objects", '{"a":' * 10_000 + "1" + "}" * 10_000, error_frame("INVALID_JSON")),
        ("deep nesting inside a ping", '{"type":"ping","x":' + "[" * 30_000 + "]" * 30_000 + "}", error_frame("INVALID_JSON")),
        ("moderate nesting is fine", '{"type":"ping","ref":"deep","x":' + "[" * 500 + "]" * 500 + "}", pong_frame("deep")),
        ("lone surrogate in ref", '{"type":"ping","ref":"\\ud800"}', error_frame("INVALID_FRAME")),
        ("lone surrogate in type", '{"type":"\\ud800","ref":"a"}', error_frame("UNKNOWN_TYPE", "a")),
        ("lone surrogate in channel", '{"type":"subscribe","channel":"room:\\ud800","ref":"s"}', invalid_channel),
        ("lone surrogate in event", '{"type":"subscribe","channel":"' + room + '","event":"\\udfff","ref":"s"}', error_frame("INVALID_EVENT", "s")),
        ("lone surrogate in an ignored field", '{"type":"ping","ref":"ok","x":"\\udc00"}', pong_frame("ok")),
        ("escaped NUL in ref", '{"type":"ping","ref":"a\\u0000b"}', pong_frame("a\x00b")),
        ("escaped NUL in type", '{"type":"ping\\u0000","ref":"a"}', error_frame("UNKNOWN_TYPE", "a")),
        ("escaped NUL in channel", '{"type":"subscribe","channel":"room:1\\u0000","ref":"s"}', invalid_channel),
        ("raw NUL byte", "\x00", error_frame("INVALID_JSON")),
        ("raw NUL after JSON", '{"type":"ping"}\x00', error_frame("INVALID_JSON")),
        ("raw NUL inside a string", '{"type":"ping","ref":"a\x00"}', error_frame("INVALID_JSON")),
    ]
    return cases


async def test_hostile_frames_get_their_documented_answer(server, target):
    mark = log_mark(server)
    cases = hostile_cases(target.room.pk, target.user.pk)
    # A fresh connection per batch keeps every frame under the burst allowance (40): exact replies.
    batch = 15
    for start in range(0, len(cases), batch):
        async with AsyncExitStack() as stack:
            ws = await open_ready(stack, server, target.key)
            for label, payload, expected in cases[start : start + batch]:
                await ws.send(payload)
                assert await recv_json(ws) == expected, label
                assert await request_reply(ws, {"type": "ping", "ref": "after"}) == pong_frame("after"), label
            await assert_next_is_sentinel_elsewhere(server, target.key, ws, room=target.room.pk)
    assert_no_traceback(server, mark)


async def test_100000_levels_of_nesting(roomy_server, target):
    mark = log_mark(roomy_server)
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, roomy_server, target.key)
        for payload in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "0" + "}" * 50_000,
                        '{"type":"ping","ref":"x","y":' + "[" * 100_000 + "]" * 100_000 + "}"):
            assert len(payload.encode()) <= 1_048_576
            await ws.send(payload)
            assert await recv_json(ws) == error_frame("INVALID_JSON")
            assert await request_reply(ws, {"type": "ping", "ref": "after"}) == pong_frame("after")
    assert_no_traceback(roomy_server, mark)


async def test_subscription_limit_is_exact(roomy_server, many_rooms):
    target = many_rooms
    mark = log_mark(roomy_server)
    pairs = [(f"room:{room.pk}", event) for room in target.rooms for event in ROOM_FILTERS]
    assert len(pairs) == 200
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, roomy_server, target.key)
        for n, (channel, event) in enumerate(pairs):
            await send_json(ws, {"type": "subscribe", "channel": channel, "event": event, "ref": n})
        replies = [await recv_json(ws) for _ in pairs]
        expected = [
            subscribed_frame(channel, event, ref=n) if n < 100 else error_frame("SUBSCRIPTION_LIMIT", n)
            for n, (channel, event) in enumerate(pairs)
        ]
        assert replies == expected
        # At the limit: subscribing again to what is held is idempotent, not a new subscription...
        channel, event = pairs[0]
        assert await subscribe(ws, channel, event, ref="again") == subscribed_frame(channel, event, ref="again")
        # ...and dropping one makes room for another.
        assert await request_reply(ws, {"type": "unsubscribe", "channel": channel, "event": event, "ref": "u"}) == {
            "type": "unsubscribed", "channel": channel, "event": event, "ref": "u"
        }
        channel, event = pairs[150]
        assert await subscribe(ws, channel, event, ref="new") == subscribed_frame(channel, event, ref="new")
        channel, event = pairs[151]
        assert await subscribe(ws, channel, event, ref="over") == error_frame("SUBSCRIPTION_LIMIT", "over")
        listed = await request_when_allowed(partial(request_reply, ws), {"type": "list_subscriptions", "ref": "l"})
        assert sum(len(entry["events"]) for entry in listed["subscriptions"]) == 100
        assert await request_reply(ws, {"type": "ping", "ref": "p"}) == pong_frame("p")
    assert_no_traceback(roomy_server, mark)


async def test_200_subscribes_in_a_row_at_the_default_rate(server, many_rooms):
    """With the default limits (20/s, burst 40, 100 subscriptions) a burst of 200 subscribes is
    answered frame by frame, in order: RATE_LIMITED for dropped frames, and for the frames let through,
    `subscribed` up to the 100th and SUBSCRIPTION_LIMIT after."""
    target = many_rooms
    mark = log_mark(server)
    pairs = [(f"room:{room.pk}", event) for room in target.rooms for event in ROOM_FILTERS]
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, server, target.key)
        for n, (channel, event) in enumerate(pairs):
            await send_json(ws, {"type": "subscribe", "channel": channel, "event": event, "ref": n})
        replies = [await recv_json(ws) for _ in pairs]
        allowed = 0
        for n, (reply, (channel, event)) in enumerate(zip(replies, pairs)):
            if reply == error_frame("RATE_LIMITED", n):
                continue
            allowed += 1
            if allowed <= 100:
                assert reply == subscribed_frame(channel, event, ref=n)
            else:
                assert reply == error_frame("SUBSCRIPTION_LIMIT", n)
        assert allowed >= 40  # at least the burst
        assert allowed < 200  # ...and the rate limit did drop frames
        assert await request_when_allowed(partial(request_reply, ws), {"type": "ping", "ref": "p"}) == pong_frame("p")
        listed = await request_when_allowed(partial(request_reply, ws), {"type": "list_subscriptions", "ref": "l"})
        assert sum(len(entry["events"]) for entry in listed["subscriptions"]) == min(allowed, 100)
    assert_no_traceback(server, mark)


async def test_1000_frames_in_one_second(server, target):
    mark = log_mark(server)
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, server, target.key)

        async def read_all() -> list[dict]:
            return [await recv_json(ws, timeout=10) for _ in range(1000)]

        reader = asyncio.create_task(read_all())
        started = time.monotonic()
        for batch in range(10):
            for n in range(batch * 100, batch * 100 + 100):
                await send_json(ws, {"type": "ping", "ref": n})
            await asyncio.sleep(0.1)
        replies = await reader
        elapsed = time.monotonic() - started
        answered = 0
        for n, reply in enumerate(replies):
            if reply == pong_frame(n):
                answered += 1
            else:
                assert reply == error_frame("RATE_LIMITED", n), reply
        # The burst, plus at most what the rate refilled while the frames were being handled.
        assert 40 <= answered <= 40 + 20 * elapsed + 1, (answered, elapsed)
        assert ws.close_code is None  # a one-second burst is not the sustained abuse that closes 4029
        assert await request_when_allowed(partial(request_reply, ws), {"type": "ping", "ref": "after"}) == pong_frame("after")
    assert_no_traceback(server, mark)


async def test_frames_over_the_size_limit_close_1009(server, target):
    mark = log_mark(server)
    def padded_ping(total: int, filler: str = "x") -> str:
        head, tail = '{"type":"ping","ref":"edge","pad":"', '"}'
        size = total - len(head) - len(tail)
        text = head + filler * (size // len(filler.encode())) + tail
        assert len(text.encode()) == total or filler != "x"
        return text

    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, server, target.key)
        await ws.send(padded_ping(65_536))  # exactly the limit: accepted
        assert await recv_json(ws) == pong_frame("edge")

    oversized = [
        ("one byte over", padded_ping(65_537)),
        ("multi-byte characters: under the limit in characters, over it in bytes", padded_ping(66_000, "€")),
        ("binary frame", b"\x00" * 65_537),
        ("far over, still under the transport cap", "x" * 500_000),
        ("over the transport cap: never reaches the application", "x" * 2_000_000),
        ("binary, over the transport cap", b"\x01" * 3_000_000),
    ]
    for label, payload in oversized:
        if isinstance(payload, str) and "€" in payload:
            assert len(payload) < 65_536 < len(payload.encode())
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {target.key}"}, max_size=None) as ws:
            await recv_json(ws)
            # Over the transport cap the server answers and closes while the client is still sending
            # megabytes: the client's send then ends with the close; what the server said is buffered.
            with suppress(ConnectionClosed):
                await ws.send(payload)
            assert await recv_json(ws) == error_frame("MESSAGE_TOO_LARGE"), label
            assert await recv_close(ws) == 1009, label

    async with AsyncExitStack() as stack:  # the server is fine afterwards
        ws = await open_ready(stack, server, target.key)
        assert await request_reply(ws, {"type": "ping", "ref": "fresh"}) == pong_frame("fresh")
    assert (await server.arequest("GET", "/v1/health"))[0] == 200
    assert_no_traceback(server, mark)


@pytest.mark.parametrize("path", ["/v1/nope", "/", "/v1/realtime/", "/v1/realtime/extra", "/admin/", "/v1/rooms"])
async def test_unknown_websocket_paths_are_refused(server, target, path):
    mark = log_mark(server)
    url = server.ws_url.replace("/v1/realtime", path)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={"Authorization": f"Bearer {target.key}"}, open_timeout=10):
            pass
    assert refused.value.response.status_code == 403
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, server, target.key)
        assert await request_reply(ws, {"type": "ping", "ref": 1}) == pong_frame(1)
    assert_no_traceback(server, mark)


@pytest.mark.parametrize("size", [20_000, 70_000])
async def test_an_upgrade_with_an_oversized_header_is_refused_at_once(server, target, size):
    """A header line far over the servers' limits: uvicorn answers 431 and closes, daphne closes;
    the client never waits for a timeout (a socket timeout fails this test)."""
    mark = log_mark(server)

    def attempt() -> bytes:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            sock.sendall(
                (
                    f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    f"Authorization: Bearer {target.key}\r\nX-Padding: {'a' * size}\r\n\r\n"
                ).encode()
            )
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received
        finally:
            sock.close()

    received = await asyncio.to_thread(attempt)
    if os.environ.get("RETROCHAT_SERVER", "uvicorn") == "uvicorn":
        assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), received[:80]
    else:
        assert received == b""
    async with AsyncExitStack() as stack:  # the server is fine afterwards
        ws = await open_ready(stack, server, target.key)
        assert await request_reply(ws, {"type": "ping", "ref": 1}) == pong_frame(1)
    assert_no_traceback(server, mark)


# --- heartbeat ---------------------------------------------------------------------------------
def raw_websocket(port: int, key: str) -> tuple[socket.socket, bytes]:
    """An upgraded TCP connection made by hand: a peer that will never answer a ping."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    nonce = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    accept = base64.b64encode(hashlib.sha1((nonce + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert b"Sec-WebSocket-Accept: " + accept in head, head
    return sock, rest


def parse_server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the complete, unmasked frames in `data`."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack(">H", data[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack(">Q", data[i : i + 8])
            i += 8
        if i + length > len(data):
            break
        frames.append((opcode, data[i : i + length]))
        i += length
    return frames


def wait_for_server_to_drop(sock: socket.socket, received: bytes, deadline: float) -> tuple[float | None, bytes]:
    """Read (never write) until the server closes the TCP connection; seconds it took, or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    try:
        while time.monotonic() - started < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return time.monotonic() - started, received
            if not chunk:
                return time.monotonic() - started, received
            received += chunk
        return None, received
    finally:
        sock.close()


async def test_heartbeat_drops_a_silent_peer_and_keeps_a_live_one(heartbeat_users):
    silent, silent_key, lively_key = heartbeat_users.silent, heartbeat_users.silent_key, heartbeat_users.lively_key
    env = {"RETROCHAT_HEARTBEAT_INTERVAL": "1", "RETROCHAT_HEARTBEAT_TIMEOUT": "2", "RETROCHAT_WRITE_THROTTLE": "off"}
    with LiveServer(**env) as live:
        async with AsyncExitStack() as stack:
            watcher = await open_ready(stack, live, lively_key)  # a normal client: answers pings itself
            channel = f"user:{silent.pk}"
            assert (await subscribe(watcher, channel, "activity"))["presence"]["status"] == "offline"
            sock, received = await asyncio.to_thread(raw_websocket, live.port, silent_key)
            assert (await recv_json(watcher))["type"] == "user:online"
            dropped_after, received = await asyncio.to_thread(wait_for_server_to_drop, sock, received, 10.0)
            assert dropped_after is not None, "the server kept a peer that never answered a ping for 10 s"
            frames = parse_server_frames(received)
            assert json.loads(frames[0][1])["type"] == "connected"
            assert any(opcode == 0x9 for opcode, _ in frames), "the server never pinged"
            assert dropped_after >= 1.5, dropped_after  # dropped by the heartbeat, not at once
            assert await recv_json(watcher) == {
                "type": "user:offline", "channel": channel,
                "data": {"user_id": f"user_{silent.pk}", "status": "offline", "timestamp": TIMESTAMP},
            }
            # The live client, connected all along, is still there.
            assert watcher.close_code is None
            assert await request_reply(watcher, {"type": "ping", "ref": "alive"}) == pong_frame("alive")
        assert_no_traceback(live)
