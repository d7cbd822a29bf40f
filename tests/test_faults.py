"""Faults (issue 4): Redis restarting under a running server, PostgreSQL going away and coming back.

The services are cut off through a TCP proxy (tests/proxy.py) that sits between one server process
and the real service, so the outage is real for that process and invisible to the rest of the suite.
"""
import asyncio
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from tests import factories
from tests.live import LiveServer, recv_json, request_reply, server_database_url
from tests.proxy import TcpProxy

pytestmark = pytest.mark.slow

RECOVERY_SECONDS = 10


def _via_proxy(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def post_until_delivered(server: LiveServer, ws, ada: dict, room=None) -> dict:
    """Post "after" through REST (to Ada's room, or `room`) until the socket receives an event
    (Redis is back); that event."""
    room = room or ada["room"]
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "after"})
        assert status == 201
        try:
            return await recv_json(ws, timeout=0.5)
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"no event within {RECOVERY_SECONDS}s of Redis coming back")


async def wait_for_log(server: LiveServer, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        await asyncio.sleep(0.1)


@pytest.fixture
def ada(transactional_db):
    ada = factories.make_user("ada")
    return {"user": ada, "key": factories.make_key(ada), "room": factories.make_room(ada)}


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_events_flow_again_after_redis_restarts_and_the_unsent_one_comes_first(ada):
    redis_url = urlsplit(settings.REDIS_URL)
    with TcpProxy(redis_url.hostname, redis_url.port or 6379) as proxy:
        # No periodic catch-up from the event log here: what arrives comes through Redis (and the
        # gap fill that a live event after the outage triggers), so this proves Redis delivery resumes.
        env = {"REDIS_URL": _via_proxy(settings.REDIS_URL, proxy), "RETROCHAT_WRITE_THROTTLE": "off", "RETROCHAT_LOG_POLL_SECONDS": "3600"}
        with LiveServer(**env) as server:
            room = ada["room"]
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws))["type"] == "connected"
                await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}", "event": "message:new"})

                proxy.down()  # Redis "restarts": every connection drops, new ones are refused…
                status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "unsent"})
                assert status == 201  # the write commits; its send through Redis fails
                proxy.up()  # …and is back.

                received = await post_until_delivered(server, ws, ada)
                # The event whose send failed is not lost: the first live event after it makes the
                # server read it from the event log and deliver it first.
                assert (received["type"], received["data"]["content"]) == ("message:new", "unsent")
                frame = await recv_json(ws)
                assert (frame["type"], frame["data"]["content"]) == ("message:new", "after")
                # The same socket still works: no consumer crashed. Events of the earlier tries
                # may still be on their way; they come before the pong.
                frame = await request_reply(ws, {"type": "ping", "ref": "p"})
                while frame["type"] != "pong":
                    assert (frame["type"], frame["data"]["content"]) == ("message:new", "after")
                    frame = await recv_json(ws)


@pytest.fixture
def bob(ada):
    """Bob, with a room of Ada's he is a member of."""
    bob = factories.make_user("bob")
    return {"user": bob, "key": factories.make_key(bob), "room": factories.make_room(ada["user"], "lounge", members=(bob,))}


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_events_committed_while_redis_is_away_arrive_from_the_log_during_the_outage(ada):
    redis_url = urlsplit(settings.REDIS_URL)
    with TcpProxy(redis_url.hostname, redis_url.port or 6379) as proxy:
        with LiveServer(REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), RETROCHAT_WRITE_THROTTLE="off") as server:
            room = ada["room"]
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws))["type"] == "connected"
                await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}", "event": "message:new"})
                proxy.down()
                status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "during"})
                assert status == 201  # the write commits; its channel-layer send fails…
                during = await recv_json(ws, timeout=RECOVERY_SECONDS)  # …and the log catch-up delivers it
                assert (during["type"], during["data"]["content"]) == ("message:new", "during")
                proxy.up()
                received = await post_until_delivered(server, ws, ada)
                assert (received["type"], received["data"]["content"], received["offset"]) == ("message:new", "after", during["offset"] + 1)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_a_client_connecting_while_redis_is_away_is_served_and_shows_online_once_it_is_back(ada, bob):
    """Presence is the one thing a Redis outage costs a running server: the connection is not
    refused, follows a channel this process did not follow yet, gets what is committed meanwhile
    (from the event log), and its user shows online once the registry answers."""
    bob_key, room = bob["key"], bob["room"]
    bob = bob["user"]

    async def bob_status() -> str:
        status, profile = await server.arequest("GET", f"/v1/users/{bob.pk}", ada["key"])
        assert status == 200
        return profile["status"]

    async def wait_for_status(wanted: str) -> None:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while await bob_status() != wanted:
            assert time.monotonic() < deadline, f"bob never showed {wanted}"
            await asyncio.sleep(0.2)

    redis_url = urlsplit(settings.REDIS_URL)
    with TcpProxy(redis_url.hostname, redis_url.port or 6379) as proxy:
        with LiveServer(
            REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), RETROCHAT_WRITE_THROTTLE="off", RETROCHAT_PRESENCE_SWEEP="1",
            # Presence of its own: user ids repeat from test to test, and an entry left in Redis by an
            # earlier test's server (stopped while cut off) would show this bob online for its TTL.
            RETROCHAT_REDIS_PREFIX=f"presence-{uuid.uuid4().hex}",
        ) as server:
            async with server.connect(ada["key"]) as observer:  # the process's hub starts, Redis up
                assert (await recv_json(observer))["type"] == "connected"
                proxy.down()
                async with server.connect(bob_key) as tab:
                    assert (await recv_json(tab, timeout=RECOVERY_SECONDS))["type"] == "connected"
                    reply = await request_reply(tab, {"type": "subscribe", "channel": f"room:{room.pk}", "event": "message:new"})
                    assert reply["type"] == "subscribed"
                    status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "during"})
                    assert status == 201
                    during = await recv_json(tab, timeout=RECOVERY_SECONDS)
                    assert (during["type"], during["data"]["content"], during["offset"]) == ("message:new", "during", reply["offset"] + 1)
                    assert await bob_status() == "offline"  # the registry is away: nobody is known online
                    proxy.up()
                    await wait_for_status("online")
                    received = await post_until_delivered(server, tab, ada, room)
                    assert (received["type"], received["data"]["content"], received["offset"]) == ("message:new", "after", during["offset"] + 1)
                await wait_for_status("offline")
            await wait_for_log(server, "accepted unregistered")


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_a_server_started_while_redis_is_away_asks_clients_to_try_again_later_until_it_is_back(ada):
    """Its hub cannot start without the channel layer: it is not ready (/v1/health answers 503), and
    a client that reaches it anyway gets INTERNAL_ERROR and 1013 (try again later), not a broken
    socket; once Redis answers, the same client connects."""
    redis_url = urlsplit(settings.REDIS_URL)
    with TcpProxy(redis_url.hostname, redis_url.port or 6379) as proxy:
        proxy.down()
        with LiveServer(REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), ready_path="/v1/health/live") as server:
            status, _ = await server.arequest("GET", "/v1/health")
            assert status == 503
            async with server.connect(ada["key"]) as ws:
                assert await recv_json(ws) == {
                    "type": "error",
                    "code": "INTERNAL_ERROR",
                    "message": "This server cannot reach its channel layer yet; try again shortly.",
                }
                await ws.wait_closed()
                assert ws.close_code == 1013
            proxy.up()
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws, timeout=RECOVERY_SECONDS))["type"] == "connected"
            assert "Traceback" not in server.log()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL to PostgreSQL")
async def test_rest_answers_503_while_postgres_is_down_and_recovers_after(ada):
    database = urlsplit(server_database_url())
    with TcpProxy(database.hostname or "127.0.0.1", database.port or 5432) as proxy:
        with LiveServer(DATABASE_URL=_via_proxy(server_database_url(), proxy), RETROCHAT_WRITE_THROTTLE="off") as server:
            room = ada["room"]
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws))["type"] == "connected"

                proxy.down()
                status, body = await server.arequest("GET", f"/v1/rooms/{room.pk}", ada["key"])
                assert status == 503
                assert body["code"] == "SERVICE_UNAVAILABLE"
                assert set(body) <= {"code", "message", "details"}
                # The open socket stays up while the database is away.
                assert (await request_reply(ws, {"type": "ping", "ref": 1}))["type"] == "pong"

                proxy.up()
                status, body = await server.arequest("GET", f"/v1/rooms/{room.pk}", ada["key"])
                assert (status, body["id"]) == (200, f"room_{room.pk}")
                status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "back"})
                assert status == 201
            assert "connection already closed" not in server.log()


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_events_flow_again_after_redis_restarts_on_the_core_layer_too(ada):
    """The core layer reads Redis directly in the hub's receive loop; an outage must not end it."""
    redis_url = urlsplit(settings.REDIS_URL)
    with TcpProxy(redis_url.hostname, redis_url.port or 6379) as proxy:
        env = {"REDIS_URL": _via_proxy(settings.REDIS_URL, proxy), "RETROCHAT_WRITE_THROTTLE": "off", "RETROCHAT_CHANNEL_LAYER": "core"}
        with LiveServer(**env) as server:
            room = ada["room"]
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws))["type"] == "connected"
                await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}", "event": "message:new"})
                proxy.down()
                await wait_for_log(server, "channel layer receive failed")  # the hub's read has failed
                proxy.up()
                received = await post_until_delivered(server, ws, ada)
                assert (received["type"], received["data"]["content"]) == ("message:new", "after")
