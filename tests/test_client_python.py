"""The Python client (clients/python) against real server processes: subscribing, exact
events, reconnecting through restarts with recovery, the not-recovered signal, stopping on 4001,
de-duplication and dead-peer detection."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from retrochat_client import (
    Client,
    ClientClosed,
    ConnectionState,
    Event,
    NotRecovered,
    Position,
    RetroChatError,
    StateChange,
    backoff_delay,
)
from retrochat_client.client import filter_matches
from tests import factories
from tests.live import ROOT, LiveServer
from users import services as user_services

pytestmark = pytest.mark.slow

ECHO_BOT = ROOT / "clients" / "python" / "examples" / "echo_bot.py"
WAIT = 15.0  # deadline for conditions that span a server restart
# Reconnecting within half a second of a restart rather than up to 1, 2, 4 s later (full jitter);
# the backoff itself has its own test.
QUICK_RECONNECT = {"backoff_base": 0.1, "backoff_cap": 0.5}


@pytest.fixture
def world(transactional_db):
    ada, bob = factories.make_user("ada"), factories.make_user("bob")
    key, secret = user_services.api_key_create(user=ada, name="client")
    return SimpleNamespace(
        ada=ada, bob=bob, key_id=key.pk, key=secret, other_key=factories.make_key(ada), bob_key=factories.make_key(bob),
        room=factories.make_room(ada, "general", members=(bob,)),
        private=factories.make_room(bob, "private", is_private=True),
    )


@pytest.fixture(scope="module")
def _restartable_server(django_db_setup, django_db_blocker):
    with LiveServer(RETROCHAT_WRITE_THROTTLE="off") as server:
        yield server


@pytest.fixture
def restartable(_restartable_server):
    """The module's server that tests stop and restart (with the default settings): running when a
    test starts, even if the one before failed while it was stopped."""
    if _restartable_server.process is None or _restartable_server.process.poll() is not None:
        _restartable_server.start()
    return _restartable_server


@pytest.fixture
def own_server(django_db_setup, django_db_blocker):
    """A server of this test's own, with settings of its own or to freeze; `own_server(**env)` starts it."""
    servers: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(RETROCHAT_WRITE_THROTTLE="off", **env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGCONT)  # in case a test froze it
        server.close()


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def next_item(sub: Any, timeout: float = WAIT) -> Any:
    return await asyncio.wait_for(anext(sub), timeout)


def post(server: LiveServer, room_id: int, key: str, content: str) -> dict[str, Any]:
    status, body = server.request("POST", f"/v1/rooms/{room_id}/messages", key, {"content": content})
    assert status == 201, body
    return body


def rest_message(server: LiveServer, key: str, message_id: str) -> dict[str, Any]:
    status, body = server.request("GET", f"/v1/messages/{message_id}", key)
    assert status == 200, body
    return body


async def write_messages_directly(author: Any, room: Any, contents: list[str]) -> list[Any]:
    """Messages created through the ORM from this process (as a cron job would): logged events
    that no server process published."""

    def write() -> list[Any]:
        try:
            return [factories.make_message(author, room=room, content=content) for content in contents]
        finally:
            connection.close()

    return await asyncio.to_thread(write)


def states_of(changes: list[StateChange]) -> list[tuple[ConnectionState, int | None]]:
    return [(change.state, change.close_code) for change in changes]


def test_backoff_has_full_jitter_and_the_documented_bounds():
    assert backoff_delay(0, rng=lambda: 1.0) == 1.0  # the first retry comes within 1 s
    assert backoff_delay(0, rng=lambda: 0.0) == 0.0
    assert [backoff_delay(n, rng=lambda: 1.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # capped at 30 s
    assert backoff_delay(10_000, rng=lambda: 0.5) == 15.0


@pytest.mark.parametrize(
    ("event_filter", "event_type", "matches"),
    [
        ("*", "room:created", True),
        ("message", "message:new", True),
        ("activity", "user:online", True),
        ("room", "room:deleted", True),
        ("conversation", "conversation:created", True),  # a user's own conversation feed
        ("room", "conversation:created", False),
        ("message:new", "message:updated", False),
    ],
)
def test_a_filter_matches_its_events_as_the_server_does(event_filter, event_type, matches):
    assert filter_matches(event_filter, event_type) is matches


async def test_subscribe_receives_exact_events(server, world):
    channel = f"room:{world.room.pk}"
    async with Client(server.ws_url, api_key=world.key) as client:
        assert client.state is ConnectionState.CONNECTED
        assert client.user_id == f"user_{world.ada.pk}"
        sub = await client.subscribe(f"room:room_{world.room.pk}", event="message")
        assert (sub.channel, sub.event) == (channel, "message")
        start = sub.position
        assert isinstance(start, Position)

        body = await asyncio.to_thread(post, server, world.room.pk, world.bob_key, "hello")
        assert await next_item(sub) == Event("message:new", channel, body, start.offset + 1, start.epoch)
        status, edited = await server.arequest("PATCH", f"/v1/messages/{body['id']}", world.bob_key, {"content": "edited"})
        assert status == 200
        assert await next_item(sub) == Event("message:updated", channel, edited, start.offset + 2, start.epoch)
        assert await client.list_subscriptions() == [{"channel": channel, "events": ["message"]}]

        await sub.unsubscribe()
        assert await client.list_subscriptions() == []
        assert [item async for item in sub] == []  # iteration ends after unsubscribe


async def test_subscribe_errors_carry_the_servers_code(server, world):
    private = world.private
    async with Client(server.ws_url, api_key=world.key) as client:
        for channel, event, code in [
            (f"room:{private.pk}", "*", "FORBIDDEN"),
            ("room:999999", "*", "CHANNEL_NOT_FOUND"),
            ("room:0", "*", "INVALID_CHANNEL"),
            (f"room:{world.room.pk}", "bogus", "INVALID_EVENT"),
        ]:
            with pytest.raises(RetroChatError) as raised:
                await client.subscribe(channel, event)
            assert raised.value.code == code
        assert client.subscriptions == []
        assert client.state is ConnectionState.CONNECTED


async def test_resubscribes_and_recovers_after_a_restart(restartable, world):
    server = restartable
    channel = f"room:{world.room.pk}"
    changes: list[StateChange] = []
    async with Client(server.ws_url, api_key=world.key, on_state=changes.append, **QUICK_RECONNECT) as client:
        sub = await client.subscribe(channel)
        start = sub.position
        await asyncio.to_thread(server.stop)  # SIGTERM: the server closes every socket with 1012
        await until(lambda: client.state is not ConnectionState.CONNECTED)
        # Written while no server runs (through the ORM, into the event log): recovered on reconnect.
        missed = await write_messages_directly(world.bob, world.room, ["missed 0", "missed 1"])
        await asyncio.to_thread(server.start)
        for n, message in enumerate(missed, start=1):
            data = await asyncio.to_thread(rest_message, server, world.key, f"msg_{message.pk}")
            assert await next_item(sub) == Event("message:new", channel, data, start.offset + n, start.epoch)
        body = await asyncio.to_thread(post, server, world.room.pk, world.bob_key, "live again")
        assert await next_item(sub) == Event("message:new", channel, body, start.offset + 3, start.epoch)
        assert sub.duplicates_dropped == 0
    assert states_of(changes)[:3] == [(ConnectionState.CONNECTING, None), (ConnectionState.CONNECTED, None), (ConnectionState.DISCONNECTED, 1012)]
    assert states_of(changes)[-2:] == [(ConnectionState.CONNECTED, None), (ConnectionState.CLOSED, None)]


async def test_a_restart_mid_stream_loses_no_event(restartable, world):
    server = restartable
    channel = f"room:{world.room.pk}"
    total = 40
    posted: list[str] = []

    def publish() -> None:
        # Retries a post that found no server; a post committed just before a restart may be
        # retried too, so the expected set comes from REST afterwards, not from this list.
        for n in range(total):
            while True:
                try:
                    posted.append(post(server, world.room.pk, world.bob_key, f"m{n}")["id"])
                    break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.05)

    async with Client(server.ws_url, api_key=world.key, **QUICK_RECONNECT) as client:
        sub = await client.subscribe(channel, "message:new")
        start = sub.position
        received: list[Event] = []

        async def consume() -> None:
            async for item in sub:
                received.append(item)

        consumer = asyncio.create_task(consume())
        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            await until(lambda: len(received) >= 5)
            await asyncio.to_thread(server.restart)
            await asyncio.to_thread(publisher.join, 60)
            status, page = await server.arequest("GET", f"/v1/rooms/{world.room.pk}/messages?limit=100", world.key)
            assert status == 200
            expected = sorted(page["results"], key=lambda m: int(m["id"].removeprefix("msg_")))
            assert len(expected) >= total
            await until(lambda: len(received) >= len(expected))
        finally:
            publisher.join(60)
            consumer.cancel()
        assert all(isinstance(item, Event) for item in received)  # no NotRecovered: nothing was lost
        assert [e.offset for e in received] == list(range(start.offset + 1, start.offset + len(expected) + 1))
        assert [e.data["id"] for e in received] == [m["id"] for m in expected]
        assert set(posted) <= {m["id"] for m in expected}


async def test_a_gap_over_the_recovery_limit_says_not_recovered(own_server, world):
    server = own_server(RETROCHAT_RECOVERY_MAX_EVENTS="3")
    channel = f"room:{world.room.pk}"
    signals: list[tuple[Any, NotRecovered]] = []
    not_recovered = {"on_not_recovered": lambda sub, nr: signals.append((sub, nr)), **QUICK_RECONNECT}
    async with Client(server.ws_url, api_key=world.key, **not_recovered) as client:
        sub = await client.subscribe(channel, "message")
        start = sub.position
        await asyncio.to_thread(server.stop)
        await until(lambda: client.state is not ConnectionState.CONNECTED)
        await write_messages_directly(world.bob, world.room, [f"missed {n}" for n in range(5)])
        await asyncio.to_thread(server.start)

        head = Position(start.epoch, start.offset + 5)
        assert await next_item(sub) == NotRecovered(channel, head)
        assert signals == [(sub, NotRecovered(channel, head))]
        body = await asyncio.to_thread(post, server, world.room.pk, world.bob_key, "after the gap")
        assert await next_item(sub) == Event("message:new", channel, body, head.offset + 1, head.epoch)


async def test_a_revoked_key_stops_the_client_without_retrying(server, world):
    changes: list[StateChange] = []
    client = Client(server.ws_url, api_key=world.key, on_state=changes.append)
    await client.connect()
    sub = await client.subscribe(f"room:{world.room.pk}")
    status, _ = await server.arequest("DELETE", f"/v1/api-keys/key_{world.key_id}", world.other_key)
    assert status == 204

    error = await asyncio.wait_for(client.wait_closed(), WAIT)
    assert (error.code, error.close_code) == ("UNAUTHORIZED", 4001)
    with pytest.raises(RetroChatError) as raised:
        await next_item(sub)
    assert raised.value.code == "UNAUTHORIZED"
    with pytest.raises(ClientClosed):
        await client.subscribe(f"room:{world.room.pk}")
    assert states_of(changes) == [(ConnectionState.CONNECTING, None), (ConnectionState.CONNECTED, None), (ConnectionState.CLOSED, 4001)]
    await client.close()


async def test_an_unknown_key_never_connects(server, world):
    client = Client(server.ws_url, api_key="rc_" + "x" * 40)
    with pytest.raises(ClientClosed) as raised:
        await asyncio.wait_for(client.connect(), WAIT)
    assert (raised.value.code, raised.value.close_code) == ("UNAUTHORIZED", 4001)


async def test_a_token_provider_is_called_on_every_connect(restartable, world):
    server = restartable
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        return world.key

    changes: list[StateChange] = []
    async with Client(server.ws_url, token=token, on_state=changes.append, **QUICK_RECONNECT) as client:
        assert len(calls) == 1
        await asyncio.to_thread(server.restart)
        await until(lambda: (ConnectionState.DISCONNECTED, 1012) in states_of(changes) and client.state is ConnectionState.CONNECTED)
        assert len(calls) >= 2  # one per connection attempt, failed ones included


class DuplicatingRelay:
    """A WebSocket relay in front of the server that sends every event frame twice, as an
    at-least-once relay may: the client must hand each offset to the application once."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.server: Any = None

    async def __aenter__(self) -> "DuplicatingRelay":
        self.server = await serve(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/realtime"

    async def handle(self, downstream: Any) -> None:
        headers = {"Authorization": downstream.request.headers["Authorization"]}
        async with connect(self.upstream, additional_headers=headers) as upstream:
            async def up() -> None:
                async for raw in downstream:
                    await upstream.send(raw)

            async def down() -> None:
                async for raw in upstream:
                    frame = json.loads(raw)
                    for _ in range(2 if "offset" in frame and "data" in frame else 1):
                        await downstream.send(raw)

            tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except ConnectionClosed:
                pass
            finally:
                for task in tasks:
                    task.cancel()


async def test_events_seen_twice_are_handed_over_once(server, world):
    channel = f"room:{world.room.pk}"
    async with DuplicatingRelay(server.ws_url) as relay, Client(relay.url, api_key=world.key) as client:
        sub = await client.subscribe(channel)
        start = sub.position
        bodies = [await asyncio.to_thread(post, server, world.room.pk, world.bob_key, f"m{n}") for n in range(3)]
        for n, body in enumerate(bodies, start=1):
            assert await next_item(sub) == Event("message:new", channel, body, start.offset + n, start.epoch)
        assert await client.ping()  # a frame after the last duplicate: all of them were read
        assert sub.duplicates_dropped == 3


async def test_a_frozen_server_is_detected_and_left(own_server, world):
    server = own_server(RETROCHAT_HEARTBEAT_INTERVAL="1")
    channel = f"room:{world.room.pk}"
    changes: list[StateChange] = []
    client = Client(server.ws_url, api_key=world.key, on_state=changes.append, heartbeat_margin=0.5, open_timeout=2, backoff_cap=1)
    async with client:
        sub = await client.subscribe(channel)
        start = sub.position
        os.killpg(server.process.pid, signal.SIGSTOP)  # alive to TCP, silent to the client
        try:
            await until(lambda: (ConnectionState.DISCONNECTED, 1006) in states_of(changes))
        finally:
            os.killpg(server.process.pid, signal.SIGCONT)
        await until(lambda: client.state is ConnectionState.CONNECTED)
        body = await asyncio.to_thread(post, server, world.room.pk, world.bob_key, "still there")
        assert await next_item(sub) == Event("message:new", channel, body, start.offset + 1, start.epoch)


def read_messages(server: LiveServer, room_id: int, key: str) -> list[str]:
    status, page = server.request("GET", f"/v1/rooms/{room_id}/messages?limit=100", key)
    assert status == 200, page
    return [message["content"] for message in page["results"]]


async def test_the_echo_bot_example_answers_across_a_restart(restartable, world):
    server = restartable
    bot = subprocess.Popen(
        [sys.executable, str(ECHO_BOT), "--url", server.http_url, "--room", str(world.room.pk)],
        env={**os.environ, "KEY": world.bob_key, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # Posted before the bot's subscription is in place, a message would not reach it (no `since` yet).
        while not (await asyncio.wait_for(asyncio.to_thread(bot.stdout.readline), WAIT)).startswith("[subscribed]"):
            assert bot.poll() is None, "the bot exited"
        await asyncio.to_thread(post, server, world.room.pk, world.key, "hello")
        await until(lambda: "echo: hello" in read_messages(server, world.room.pk, world.key))
        await asyncio.to_thread(server.restart)
        await asyncio.to_thread(post, server, world.room.pk, world.key, "again")
        await until(lambda: "echo: again" in read_messages(server, world.room.pk, world.key))
        assert read_messages(server, world.room.pk, world.key) == ["echo: again", "again", "echo: hello", "hello"]
    finally:
        bot.terminate()
        bot.wait(10)
