"""A Redis that stops answering (hung, or the network to it gone quiet) rather than refusing: the
channel layer's connections have no socket timeout, so every call that waits for it must bound its
own wait. And a Redis that refuses: leaving a channel must not cost the client an error frame or the
log a traceback. See tests/test_faults.py for the proxy and the outage it makes."""
import asyncio
import time
import uuid
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests import factories
from tests.live import LiveServer, recv_json, request_reply
from tests.proxy import TcpProxy
from tests.test_faults import RECOVERY_SECONDS, _via_proxy, ada, post_until_delivered  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


class HangingProxy(TcpProxy):
    """`hang()`: Redis keeps every connection open and accepts new ones, but answers nothing (what it
    is sent is dropped); `up()` after it: the held connections are dropped, as a restart would, and
    new ones reach Redis again."""

    hung = False

    def hang(self) -> None:
        async def _hang() -> None:
            self.hung = True
        self._run(_hang())

    async def _listen(self) -> None:
        if self.hung:
            self.hung = False
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()
        await super()._listen()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if not self.hung:
            return await super()._handle(client_reader, client_writer)
        self.writers.add(client_writer)
        try:
            while await client_reader.read(65536):
                pass
        finally:
            self.writers.discard(client_writer)
            client_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.hung:
                    writer.write(data)
                    await writer.drain()
        finally:
            self.writers.discard(writer)
            writer.transport.abort()


def _redis() -> tuple[str, int]:
    url = urlsplit(settings.REDIS_URL)
    return url.hostname or "127.0.0.1", url.port or 6379


@pytest.fixture
def second(ada):
    """A second room of Ada's."""
    return factories.make_room(ada["user"], "second")


def _unexpected_tracebacks(log: str) -> list[str]:
    """The log records with a traceback, but for the two an outage is known to log with one: a failed
    after-commit send (realtime/publish.py) and channels-redis' own pubsub receiver."""
    records = log.split("\n2")  # each record starts with its date
    known = ("After-commit send", "channels_redis.pubsub Unexpected exception in receive task")
    return [r for r in records if "Traceback" in r and not any(k in r.split("\n", 1)[0] for k in known)]


LAYERS = pytest.mark.parametrize("layer", ["pubsub", "core"])


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
@LAYERS
async def test_leaving_a_channel_while_redis_refuses_answers_unsubscribed_only_and_logs_no_traceback(ada, second, layer):
    room, other_room = ada["room"], second
    with TcpProxy(*_redis()) as proxy:
        with LiveServer(REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), RETROCHAT_CHANNEL_LAYER=layer) as server:
            async with server.connect(ada["key"]) as ws:
                assert (await recv_json(ws))["type"] == "connected"
                assert (await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}"}))["type"] == "subscribed"
                async with server.connect(ada["key"]) as other:  # closes subscribed, below
                    assert (await recv_json(other))["type"] == "connected"
                    reply = await request_reply(other, {"type": "subscribe", "channel": f"room:{other_room.pk}"})
                    assert reply["type"] == "subscribed"
                    proxy.down()
                assert await request_reply(ws, {"type": "unsubscribe", "channel": f"room:{room.pk}", "ref": 1}) == {
                    "type": "unsubscribed", "channel": f"room:{room.pk}", "ref": 1,
                }
                pong = await request_reply(ws, {"type": "ping", "ref": 2})
                assert (pong["type"], pong["ref"]) == ("pong", 2)
            proxy.up()
            deadline = time.monotonic() + 10
            while server.log().count("WS close") < 2:  # both connections cleaned up (and logged what failed)
                assert time.monotonic() < deadline, "a connection was never cleaned up"
                await asyncio.sleep(0.05)
            assert _unexpected_tracebacks(server.log()) == []


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
@LAYERS
async def test_a_hung_redis_stalls_no_subscribe_unsubscribe_or_close_and_events_stay_contiguous(ada, second, layer):
    first = ada["room"]
    with HangingProxy(*_redis()) as proxy:
        with LiveServer(
            REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), RETROCHAT_CHANNEL_LAYER=layer, RETROCHAT_WRITE_THROTTLE="off"
        ) as server:
            async with server.connect(ada["key"]) as ws, server.connect(ada["key"]) as leaver:
                assert (await recv_json(ws))["type"] == "connected"
                assert (await recv_json(leaver))["type"] == "connected"
                assert (await request_reply(leaver, {"type": "subscribe", "channel": f"room:{first.pk}"}))["type"] == "subscribed"
                proxy.hang()
                started = time.monotonic()
                assert await request_reply(leaver, {"type": "unsubscribe", "channel": f"room:{first.pk}", "ref": 1}) == {
                    "type": "unsubscribed", "channel": f"room:{first.pk}", "ref": 1,
                }
                pong = await request_reply(leaver, {"type": "ping", "ref": 2})
                assert (pong["type"], pong["ref"]) == ("pong", 2)
                reply = await asyncio.wait_for(
                    request_reply(ws, {"type": "subscribe", "channel": f"room:{second.pk}", "event": "message:new"}), 8
                )
                assert reply["type"] == "subscribed"
                assert time.monotonic() - started < 8
                status, _ = await server.arequest("POST", f"/v1/rooms/{second.pk}/messages", ada["key"], {"content": "during"})
                assert status == 201
                during = await recv_json(ws, timeout=RECOVERY_SECONDS)
                assert (during["type"], during["data"]["content"], during["offset"]) == ("message:new", "during", reply["offset"] + 1)
                proxy.up()
                received = await post_until_delivered(server, ws, ada, second)
                assert (received["type"], received["data"]["content"], received["offset"]) == ("message:new", "after", during["offset"] + 1)
            assert _unexpected_tracebacks(server.log()) == []


@pytest.fixture
def bob(ada):
    bob = factories.make_user("bob")
    return {"user": bob, "key": factories.make_key(bob)}


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_a_user_connected_through_an_outage_longer_than_the_ttl_shows_online_again_once_redis_answers(ada, bob):
    """One process is cut off from Redis for longer than the presence TTL while another reaches it:
    that one's sweep takes the user offline (their entry expired). The connection is still open, so
    once its process reaches Redis again the user shows online again (and offline after it closes)."""
    # A prefix of its own: user ids start again in every test, and another test's entry that has not
    # expired yet (a server stopped while Redis was away) would show this Bob online.
    env = {"RETROCHAT_PRESENCE_TTL": "3", "RETROCHAT_PRESENCE_SWEEP": "1", "RETROCHAT_REDIS_PREFIX": f"ttl-{uuid.uuid4().hex}"}

    async def wait_for_status(server: LiveServer, wanted: str) -> None:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            status, profile = await server.arequest("GET", f"/v1/users/{bob['user'].pk}", ada["key"])
            assert status == 200
            if profile["status"] == wanted:
                return
            assert time.monotonic() < deadline, f"bob never showed {wanted}"
            await asyncio.sleep(0.2)

    with TcpProxy(*_redis()) as proxy:
        with LiveServer(REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), **env) as cut, LiveServer(REDIS_URL=settings.REDIS_URL, **env) as other:
            async with other.connect(ada["key"]) as observer, cut.connect(bob["key"]) as tab:
                assert (await recv_json(observer))["type"] == "connected"  # its hub sweeps from now on
                assert (await recv_json(tab))["type"] == "connected"
                await wait_for_status(other, "online")
                proxy.down()
                await wait_for_status(other, "offline")  # its entry expired; the other process swept it
                proxy.up()
                await wait_for_status(other, "online")
                pong = await request_reply(tab, {"type": "ping", "ref": 1})
                assert (pong["type"], pong["ref"]) == ("pong", 1)
            await wait_for_status(other, "offline")
            assert _unexpected_tracebacks(cut.log()) == []


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_the_connection_limit_holds_within_a_process_while_redis_is_away(ada):
    """The registry cannot count connections during an outage; the process still counts its own, so
    one user cannot open more than the limit on one process (the cluster-wide count resumes after)."""
    with TcpProxy(*_redis()) as proxy:
        with LiveServer(REDIS_URL=_via_proxy(settings.REDIS_URL, proxy), RETROCHAT_MAX_CONNECTIONS_PER_USER="2") as server:
            async with server.connect(ada["key"]) as first:
                assert (await recv_json(first))["type"] == "connected"  # the hub starts with Redis up
                proxy.down()
                async with server.connect(ada["key"]) as second:
                    assert (await recv_json(second, timeout=RECOVERY_SECONDS))["type"] == "connected"
                    async with server.connect(ada["key"]) as third:
                        assert await recv_json(third, timeout=RECOVERY_SECONDS) == {
                            "type": "error", "code": "CONNECTION_LIMIT", "message": "At most 2 open connections per user.",
                        }
                        await third.wait_closed()
                        assert third.close_code == 4029
