"""The HTTP side under ASGI (retrochat/http_handler.py): each request runs whole on one of a fixed
pool of long-lived threads, which keep their database connections between requests."""
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.http import StreamingHttpResponse

from retrochat.http_handler import PooledHTTPHandler
from tests import factories


@pytest.fixture
def handler():
    handler = PooledHTTPHandler(threads=1)
    yield handler
    # The pool thread's database connection must not outlive the test (PostgreSQL would refuse to
    # drop the test database while it is open).
    handler.executor.submit(connections.close_all).result()
    handler.executor.shutdown()
    handler.probe_executor.submit(connections.close_all).result()
    handler.probe_executor.shutdown()


def watch(handler, monkeypatch) -> list[tuple[str, object]]:
    """(thread name, database connection) of every request, seen when its response is ready."""
    seen: list[tuple[str, object]] = []
    get_response = handler.get_response

    def recording(request):
        response = get_response(request)
        seen.append((threading.current_thread().name, connections["default"].connection))
        return response

    monkeypatch.setattr(handler, "get_response", recording)
    return seen


async def get(handler, path: str, key: str | None = None) -> tuple[int, bytes]:
    """(status, body) of one GET through the ASGI interface."""
    headers = [(b"host", b"testserver")] + ([(b"authorization", f"Bearer {key}".encode())] if key else [])
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "scheme": "http", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            await communicator.wait(10)  # the request's handling has ended, clean-up included
            return start["status"], body


@pytest.mark.django_db(transaction=True)
async def test_requests_run_on_a_pool_thread_that_keeps_its_database_connection(handler, monkeypatch):
    from asgiref.sync import sync_to_async

    key = await sync_to_async(lambda: factories.make_key(factories.make_user("ada")))()
    seen = watch(handler, monkeypatch)

    first = await get(handler, "/v1/users/me", key)
    second = await get(handler, "/v1/users/me", key)

    assert first == second and first[0] == 200 and b'"username":"ada"' in first[1]
    [(thread_1, connection_1), (thread_2, connection_2)] = seen
    assert thread_1 == thread_2 and thread_1.startswith("retrochat-http")
    assert connection_1 is not None and connection_1 is connection_2  # not reopened for the second request


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
async def test_a_streaming_response_is_sent_whole_and_closed_once_sent(handler, monkeypatch):
    closed: list[str] = []

    def streaming(request):
        response = StreamingHttpResponse(iter([b"first ", b"second"]), content_type="text/plain")
        response._resource_closers.append(lambda: closed.append(threading.current_thread().name))
        return response

    monkeypatch.setattr(handler, "get_response", streaming)

    assert await get(handler, "/anything") == (200, b"first second")
    assert len(closed) == 1 and closed[0].startswith("retrochat-http")


async def test_liveness_answers_while_every_pool_thread_is_busy(handler, monkeypatch):
    # Every pool thread stuck in a request (a lock wait, a database that does not answer): the
    # liveness probe must still answer, or an orchestrator restarts a process that is alive
    # (docs/deploy.md: a database or Redis outage never makes it restart healthy processes).
    import asyncio

    release, entered = threading.Event(), threading.Event()
    get_response = handler.get_response

    def blocking(request):
        if request.path == "/stuck":
            entered.set()
            release.wait(10)
        return get_response(request)

    monkeypatch.setattr(handler, "get_response", blocking)
    stuck = asyncio.ensure_future(get(handler, "/stuck"))  # the pool's only thread
    assert await asyncio.to_thread(entered.wait, 5)  # …is busy now
    try:
        assert await asyncio.wait_for(get(handler, "/v1/health/live"), 2) == (200, b'{"status":"ok"}')
    finally:
        release.set()
        await stuck
