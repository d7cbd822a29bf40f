"""What an open WebSocket keeps for its life (bench/notes.md, memory per connection).

Under uvicorn (in this process, patched by realtime/transport.py as in production), once a
connection is open: the handshake request and response are let go and the headers with them, the
receive queue and the `writable` event are the light ones of realtime/aio.py, and the HTTP protocol
object that handled the upgrade is freed at once, not left in a cycle for the garbage collector.
The light primitives themselves behave as the asyncio ones they replace.
"""
import asyncio
import gc
import json

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect

from realtime.aio import Flag, ReceiveQueue
from tests import factories
from tests.live import free_port
from tests.realtime_client import sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def key() -> str:
    return await sync(lambda: factories.make_key(factories.make_user("ada")))()


@pytest.fixture
async def uvicorn_server():
    from retrochat.asgi import application

    port = free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, loop="none", http="httptools", ws="websockets-sansio",
        ws_per_message_deflate=False, lifespan="off", log_config=None, access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield server, f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def websocket_protocols(server: uvicorn.Server) -> list[WebSocketsSansIOProtocol]:
    return [c for c in server.server_state.connections if isinstance(c, WebSocketsSansIOProtocol)]


async def test_an_open_uvicorn_websocket_keeps_no_handshake_and_light_primitives(uvicorn_server, key):
    server, url = uvicorn_server
    gc.disable()  # garbage left in a cycle stays visible to gc.get_objects() until collected
    try:
        gc.collect()
        before = {id(o) for o in gc.get_objects() if type(o) is HttpToolsProtocol}
        async with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            (protocol,) = websocket_protocols(server)
            assert protocol.request is None and protocol.response is None
            assert protocol.scope["headers"] == []
            assert isinstance(protocol.queue, ReceiveQueue) and isinstance(protocol.writable, Flag)
            assert protocol.writable.is_set()
            assert not [o for o in gc.get_objects() if type(o) is HttpToolsProtocol and id(o) not in before]
            # Still a working connection: a frame in, its answer out.
            await ws.send(json.dumps({"type": "ping", "ref": 1}))
            assert json.loads(await ws.recv())["type"] == "pong"
    finally:
        gc.enable()


async def test_a_refused_handshake_still_answers_under_uvicorn(uvicorn_server):
    _, url = uvicorn_server
    async with connect(url, additional_headers={"Authorization": "Bearer rc_nothing"}) as ws:
        assert json.loads(await ws.recv())["code"] == "UNAUTHORIZED"
        await ws.wait_closed()
        assert ws.close_code == 4001


# --- the primitives ---------------------------------------------------------------------------


async def test_flag_wakes_every_waiter_and_can_be_cleared():
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait() is True
    flag.clear()
    assert not flag.is_set()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flag._waiters == []


async def test_receive_queue_is_fifo_and_wakes_a_waiting_getter():
    queue: ReceiveQueue[int] = ReceiveQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getter == 1
    assert queue.qsize() == 1 and not queue.empty()
    assert await queue.get() == 2
    assert queue.empty()


async def test_receive_queue_passes_the_wake_up_on_when_a_woken_getter_is_cancelled():
    queue: ReceiveQueue[str] = ReceiveQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("x")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "x"
    with pytest.raises(asyncio.CancelledError):
        await first
