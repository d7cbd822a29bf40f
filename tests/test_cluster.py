"""Many processes: two real server processes share one
Redis and one database. These need REDIS_URL (the in-process channel layer cannot cross processes);
.ci/run sets it, and a set REDIS_URL that does not answer fails the run (tests/conftest.py)."""
import asyncio
import signal
import time

import pytest
from django.conf import settings

from tests import factories
from tests.live import LiveServer, assert_silent, recv_json, request_reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: processes share events and presence through Redis"),
]

FAST_PRESENCE = {"RETROCHAT_PRESENCE_TTL": "3", "RETROCHAT_PRESENCE_SWEEP": "1", "RETROCHAT_WRITE_THROTTLE": "off"}


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker):
    with LiveServer(**FAST_PRESENCE) as a, LiveServer(**FAST_PRESENCE) as b:
        yield a, b


@pytest.fixture
def people(transactional_db):
    ada, bob = factories.make_user("ada"), factories.make_user("bob")
    room = factories.make_room(ada, members=(bob,))
    return {"ada": ada, "bob": bob, "room": room, "ada_key": factories.make_key(ada), "bob_key": factories.make_key(bob)}


async def connected(ws):
    frame = await recv_json(ws)
    assert frame["type"] == "connected"
    return ws


async def test_a_socket_on_one_process_receives_what_is_posted_through_the_other(cluster, people):
    a, b = cluster
    room = people["room"]
    async with a.connect(people["ada_key"]) as ws:
        await connected(ws)
        reply = await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}", "event": "message"})
        assert reply["type"] == "subscribed"
        status, body = await b.arequest("POST", f"/v1/rooms/{room.pk}/messages", people["bob_key"], {"content": "from B"})
        assert status == 201
        # Logged events carry their stream position: the next offset after the one `subscribed` gave.
        position = {"offset": reply["offset"] + 1, "epoch": reply["epoch"]}
        assert await recv_json(ws) == {"type": "message:new", "channel": f"room:{room.pk}", **position, "data": body}


async def test_a_user_with_a_tab_on_each_process_goes_online_once_and_offline_once(cluster, people):
    a, b = cluster
    bob = people["bob"]
    activity = {"type": "subscribe", "channel": f"user:{bob.pk}", "event": "activity"}
    async with a.connect(people["ada_key"]) as observer:
        await connected(observer)
        reply = await request_reply(observer, activity)
        assert reply["presence"]["status"] == "offline"
        tab_a = await a.connect(people["bob_key"])
        await connected(tab_a)
        online = await recv_json(observer)
        assert (online["type"], online["data"]["user_id"], online["data"]["status"]) == ("user:online", f"user_{bob.pk}", "online")
        tab_b = await b.connect(people["bob_key"])
        await connected(tab_b)
        await assert_silent(observer, 0.5)  # the second tab is no transition
        await tab_a.close()
        await assert_silent(observer, 0.5)  # one tab still open, on the other process
        await tab_b.close()
        offline = await recv_json(observer)
        assert (offline["type"], offline["data"]["user_id"], offline["data"]["status"]) == ("user:offline", f"user_{bob.pk}", "offline")
        await assert_silent(observer, 0.5)
    status, profile = await a.arequest("GET", f"/v1/users/{bob.pk}", people["ada_key"])
    assert (status, profile["status"]) == (200, "offline")
    assert profile["last_seen_at"] is not None


async def test_the_connection_limit_holds_across_processes(cluster, people):
    a, b = cluster
    a_limited = LiveServer(RETROCHAT_MAX_CONNECTIONS_PER_USER="2", **FAST_PRESENCE)
    b_limited = LiveServer(RETROCHAT_MAX_CONNECTIONS_PER_USER="2", **FAST_PRESENCE)
    with a_limited, b_limited:
        first = await connected(await a_limited.connect(people["bob_key"]))
        second = await connected(await b_limited.connect(people["bob_key"]))
        async with a_limited.connect(people["bob_key"]) as third:
            assert (await recv_json(third))["code"] == "CONNECTION_LIMIT"
            await third.wait_closed()
            assert third.close_code == 4029
        await first.close()
        await second.close()


async def test_a_killed_process_takes_its_users_offline_announced_by_the_other(cluster, people):
    a, _ = cluster
    bob = people["bob"]
    with LiveServer(**FAST_PRESENCE) as doomed:
        async with a.connect(people["ada_key"]) as observer:
            await connected(observer)
            await request_reply(observer, {"type": "subscribe", "channel": f"user:{bob.pk}", "event": "activity"})
            victim = await connected(await doomed.connect(people["bob_key"]))
            assert (await recv_json(observer))["type"] == "user:online"
            killed_at = time.monotonic()
            doomed.stop(signal.SIGKILL)
            offline = await recv_json(observer, timeout=30)
            assert (offline["type"], offline["data"]["user_id"]) == ("user:offline", f"user_{bob.pk}")
            # TTL 3 s + sweep every 1 s here; the defaults (40 s + 10 s) keep the spec's 60 s.
            assert time.monotonic() - killed_at < 30
            await victim.close()


async def test_revoking_a_key_closes_its_sockets_on_both_processes(cluster, people):
    a, b = cluster
    on_a = await connected(await a.connect(people["bob_key"]))
    on_b = await connected(await b.connect(people["bob_key"]))
    status, keys = await a.arequest("GET", "/v1/api-keys", people["bob_key"])
    assert status == 200
    key_id = keys["results"][0]["id"]
    status, _ = await b.arequest("DELETE", f"/v1/api-keys/{key_id}", people["bob_key"])
    assert status == 204
    for ws in (on_a, on_b):
        frame = await recv_json(ws, timeout=2)
        assert (frame["type"], frame["code"]) == ("error", "UNAUTHORIZED")
        await asyncio.wait_for(ws.wait_closed(), 2)
        assert ws.close_code == 4001


async def test_sigterm_closes_sockets_with_a_restart_code_and_clears_presence_at_once(cluster, people):
    a, _ = cluster
    bob = people["bob"]
    with LiveServer(**FAST_PRESENCE) as leaving:
        async with a.connect(people["ada_key"]) as observer:
            await connected(observer)
            await request_reply(observer, {"type": "subscribe", "channel": f"user:{bob.pk}", "event": "activity"})
            ws = await connected(await leaving.connect(people["bob_key"]))
            assert (await recv_json(observer))["type"] == "user:online"
            leaving.stop(signal.SIGTERM)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code in (1001, 1012)  # daphne: going away; uvicorn: restarting
            # Announced by the shutdown itself, well before any expiry-based sweep could.
            offline = await recv_json(observer, timeout=2)
            assert (offline["type"], offline["data"]["user_id"]) == ("user:offline", f"user_{bob.pk}")
