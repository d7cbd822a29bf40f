"""Lossless delivery against real server processes, talked to as clients do.

- The replay/live boundary: writers commit thousands of events to one room while clients keep
  disconnecting and resubscribing with `since`; each client ends with every offset exactly once.
- Redis cut off (through a TCP proxy, tests/proxy.py) under two server processes while writers
  commit: every connected client still gets every offset exactly once, in order.
- The embedded default (no REDIS_URL): a change committed by another process reaches the server's
  sockets through the event log, control messages (revocations) included.
"""
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from realtime import streams
from rooms import services as room_services
from tests import factories
from tests.live import ROOT, LiveServer, recv_json, request_reply, server_database_url
from tests.proxy import TcpProxy
from tests.support import message_data, subscribed_frame
from tests.test_faults import _via_proxy

pytestmark = pytest.mark.slow

NO_THROTTLE = {"RETROCHAT_WRITE_THROTTLE": "off"}
# The boundary test must never fall back to `recovered: false`: a client is never that far behind.
GENEROUS_RETENTION = {"RETROCHAT_RECOVERY_MAX_EVENTS": "100000", "RETROCHAT_HISTORY_SIZE": "100000"}
# No REDIS_URL: the embedded default, whatever the suite runs with. Credentials are re-validated
# rarely, so that a closed socket proves the revocation travelled through the log.
EMBEDDED = {"REDIS_URL": "", "RETROCHAT_REVALIDATE_SECONDS": "3600", **NO_THROTTLE}


def head(channel: str) -> streams.Position:
    try:
        return streams.positions([channel])[channel]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def embedded(django_db_setup, django_db_blocker):
    with LiveServer(**EMBEDDED) as live:
        yield live


@pytest.fixture(scope="module")
def recovering(django_db_setup, django_db_blocker):
    """A server as the suite is configured (Redis when REDIS_URL is set), keeping a long history."""
    with LiveServer(**NO_THROTTLE, **GENEROUS_RETENTION) as live:
        yield live


@pytest.fixture
def people(transactional_db):
    ada, bob = factories.make_user("ada"), factories.make_user("bob")
    room = factories.make_room(ada, members=(bob,))
    return {"ada": ada, "bob": bob, "room": room, "ada_key": factories.make_key(ada), "bob_key": factories.make_key(bob)}


async def ready(ws: Any) -> Any:
    frame = await recv_json(ws)
    assert frame["type"] == "connected", frame
    return ws


async def wait_until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll `condition` until it holds; fail if `deadline` (time.monotonic()) passes first."""
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """Run database work in a thread of its own (with its own connection, closed at the end)."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class Reader:
    """One connected client: records the offset of every event frame of `channel` it receives."""

    def __init__(self, ws: Any, channel: str, epoch: str) -> None:
        self.ws, self.channel, self.epoch = ws, channel, epoch
        self.offsets: list[int] = []
        self.problem: str | None = None
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if (frame.get("type"), frame.get("channel"), frame.get("epoch")) != ("message:new", self.channel, self.epoch):
                    self.problem = f"unexpected frame {frame}"
                    return
                self.offsets.append(frame["offset"])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.problem = f"reading failed: {exc!r}"
        else:
            self.problem = self.problem or f"the connection closed ({self.ws.close_code})"

    def has(self, offset: int) -> bool:
        assert self.problem is None, self.problem
        return bool(self.offsets) and self.offsets[-1] >= offset

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# --- the replay/live boundary under concurrent writers -----------------------------------------


async def test_clients_that_keep_resubscribing_with_since_get_every_offset_once_in_order(recovering, people):
    """Writers commit to one room through REST on the server (delivered live) and through services
    in this process (reaching the server through Redis, or only through the log without it), while
    each client disconnects after a random number of frames (sometimes none: mid-replay) and
    resubscribes with the position of the last frame it got."""
    server, room = recovering, people["room"]
    channel = f"room:{room.pk}"
    service_writers, per_service_writer, rest_writers, per_rest_writer = 2, 500, 2, 100
    total = service_writers * per_service_writer + rest_writers * per_rest_writer
    start = await asyncio.to_thread(head, channel)
    final = start.offset + total
    errors: list[BaseException] = []

    def write_with_services(i: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(per_service_writer):
                room_services.message_create(author=people["ada"], room=room, content=f"s{i}-{n}")
        return run

    def write_through_rest(i: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(per_rest_writer):
                status, _ = server.request("POST", f"/v1/rooms/{room.pk}/messages", people["ada_key"], {"content": f"r{i}-{n}"})
                assert status == 201, status
        return run

    async def client(seed: int, subscribed_once: asyncio.Event) -> list[int]:
        rng = random.Random(seed)
        offsets: list[int] = []
        position = (start.offset, start.epoch)
        first = True
        deadline = time.monotonic() + 60
        while not offsets or offsets[-1] < final:
            assert time.monotonic() < deadline, f"client {seed} stuck at {position}"
            # An unbounded receive queue: with the default one, websockets stops reading when 16
            # frames wait, and a clean close then waits out its timeout behind the replay.
            async with server.connect(people["bob_key"], max_queue=None) as ws:
                await ready(ws)
                frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": "s"}
                if not first:
                    frame["since"] = {"offset": position[0], "epoch": position[1]}
                reply = await request_reply(ws, frame)
                if first:
                    assert reply == subscribed_frame(channel, ref="s", offset=start.offset, epoch=start.epoch), reply
                    first = False
                    subscribed_once.set()
                else:
                    assert reply == subscribed_frame(channel, ref="s", offset=reply["offset"], epoch=start.epoch, recovered=True), reply
                    assert reply["offset"] >= position[0]
                for _ in range(rng.choice([0, 1, 5, 20, 80, 200])):
                    if offsets and offsets[-1] >= final:
                        break
                    event = await recv_json(ws, timeout=10)
                    assert (event["type"], event["channel"], event["epoch"]) == ("message:new", channel, start.epoch), event
                    offsets.append(event["offset"])
                    position = (event["offset"], event["epoch"])
                if rng.random() < 0.5:
                    ws.transport.abort()  # the network drops, rather than a clean close
        return offsets

    subscribed_once = [asyncio.Event() for _ in range(3)]
    clients = [asyncio.ensure_future(client(seed, event)) for seed, event in enumerate(subscribed_once)]
    threads: list[threading.Thread] = []
    try:
        # Every client stands at `start` before the first write.
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in subscribed_once)), 10)
        threads += [in_thread(write_with_services(i), errors) for i in range(service_writers)]
        threads += [in_thread(write_through_rest(i), errors) for i in range(rest_writers)]
        results = await asyncio.gather(*clients)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        await asyncio.to_thread(lambda: [t.join(timeout=120) for t in threads])
    assert errors == []
    assert (await asyncio.to_thread(head, channel)).offset == final
    for offsets in results:
        assert offsets == list(range(start.offset + 1, final + 1))


# --- Redis cut off under two processes ---------------------------------------------------------


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_every_connected_client_gets_every_offset_once_when_redis_goes_away_and_comes_back(people):
    redis = urlsplit(settings.REDIS_URL)
    room, channel = people["room"], f"room:{people['room'].pk}"
    with TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379) as proxy:
        env = {"REDIS_URL": _via_proxy(settings.REDIS_URL, proxy), **NO_THROTTLE}
        with LiveServer(**env) as a, LiveServer(**env) as b:
            start = await asyncio.to_thread(head, channel)
            sockets, readers = [], []
            try:
                for server in (a, a, b, b):
                    ws = await ready(await server.connect(people["bob_key"]))
                    sockets.append(ws)
                    assert await request_reply(ws, {"type": "subscribe", "channel": channel, "ref": "s"}) == subscribed_frame(channel, ref="s", offset=start.offset, epoch=start.epoch)
                    readers.append(Reader(ws, channel, start.epoch))

                committed = 0
                stop = asyncio.Event()

                async def write() -> None:
                    nonlocal committed
                    servers = (a, b)
                    while not stop.is_set():
                        server = servers[committed % 2]
                        status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", people["ada_key"], {"content": f"m{committed}"})
                        assert status == 201, status
                        committed += 1

                writer = asyncio.ensure_future(write())
                try:
                    await wait_until(lambda: all(r.has(start.offset + 10) for r in readers), time.monotonic() + 10, "events before the outage")
                    proxy.down()
                    during = committed
                    await wait_until(lambda: committed >= during + 20 or writer.done(), time.monotonic() + 20, "writes during the outage")
                    proxy.up()
                    answered_at = time.monotonic()
                    # Everything committed while Redis was unreachable (and a little since) is read
                    # after Redis answers again: it must reach every client within 5 s.
                    committed_then = (await asyncio.to_thread(head, channel)).offset
                    await wait_until(
                        lambda: all(r.has(committed_then) for r in readers), answered_at + 5, "the events committed during the outage"
                    )
                    after = committed
                    await wait_until(lambda: committed >= after + 20 or writer.done(), time.monotonic() + 10, "writes after the outage")
                finally:
                    stop.set()
                    await asyncio.gather(writer, return_exceptions=True)
                assert writer.exception() is None
                final = (await asyncio.to_thread(head, channel)).offset
                assert final == start.offset + committed
                await wait_until(lambda: all(r.has(final) for r in readers), time.monotonic() + 10, "the last events")
                for reader in readers:
                    assert reader.offsets == list(range(start.offset + 1, final + 1))
            finally:
                for reader in readers:
                    await reader.stop()
                for ws in sockets:
                    await ws.close()


# --- the embedded default: other processes reach the server through the log --------------------


def other_process(code: str) -> None:
    """Run `code` in `manage.py shell` in a process of its own, on the live server's database,
    without Redis (as a cron job or an operator's shell next to an embedded server)."""
    env = {"DATABASE_URL": server_database_url(), "REDIS_URL": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def stored_message_data(message_id: int) -> dict[str, Any]:
    """`message_data` of a row, read from a worker thread that closes its connection afterwards."""
    from rooms.models import Message

    try:
        return message_data(Message.objects.get(pk=message_id))
    finally:
        connection.close()


async def test_a_message_created_by_another_process_reaches_an_embedded_server_socket_within_2s(embedded, people):
    room, channel = people["room"], f"room:{people['room'].pk}"
    async with embedded.connect(people["bob_key"]) as ws:
        await ready(ws)
        reply = await request_reply(ws, {"type": "subscribe", "channel": channel, "ref": "s"})
        offset, epoch = reply["offset"], reply["epoch"]
        assert reply == subscribed_frame(channel, ref="s", offset=offset, epoch=epoch)
        await asyncio.to_thread(
            other_process,
            "from rooms import services; from rooms.models import Room; from users.models import User; "
            f"services.message_create(author=User.objects.get(pk={people['ada'].pk}), room=Room.objects.get(pk={room.pk}), content='from cron')",
        )
        frame = await recv_json(ws, timeout=2)
        message_id = int(frame["data"]["id"].removeprefix("msg_"))
        data = await asyncio.to_thread(stored_message_data, message_id)
        assert data["content"] == "from cron"
        assert frame == {"type": "message:new", "channel": channel, "offset": offset + 1, "epoch": epoch, "data": data}


async def revoked(ws: Any) -> None:
    frame = await recv_json(ws, timeout=2)
    assert (frame["type"], frame["code"]) == ("error", "UNAUTHORIZED"), frame
    await asyncio.wait_for(ws.wait_closed(), 2)
    assert ws.close_code == 4001


async def test_a_key_revoked_by_another_process_closes_its_embedded_server_socket(embedded, people):
    async with embedded.connect(people["bob_key"]) as ws, embedded.connect(people["ada_key"]) as bystander:
        await ready(ws)
        await ready(bystander)
        await asyncio.to_thread(
            other_process,
            "from users import services; from users.models import ApiKey; "
            f"[services.api_key_revoke(api_key=k) for k in ApiKey.objects.filter(user_id={people['bob'].pk})]",
        )
        await revoked(ws)
        assert (await request_reply(bystander, {"type": "ping", "ref": "p"}))["type"] == "pong"


async def test_a_user_deactivated_by_another_process_loses_its_embedded_server_socket(embedded, people):
    async with embedded.connect(people["bob_key"]) as ws:
        await ready(ws)
        await asyncio.to_thread(
            other_process,
            f"from users.models import User; u = User.objects.get(pk={people['bob'].pk}); u.is_active = False; u.save()",
        )
        await revoked(ws)
