"""Django's HTTP side under ASGI, served by a fixed pool of long-lived worker threads.

Django's own `ASGIHandler` runs every request in a `ThreadSensitiveContext` of its own, which means
a thread started and joined per request; database connections are per thread, so none can outlive
a request (a new connection per request, whatever `CONN_MAX_AGE` says). It also adapts the
synchronous middleware chain for async use (a hop from the worker thread back to the event loop and
out again per request) and creates two tasks per request to watch for a disconnect. Every view and
middleware of this project is synchronous, so none of that buys anything here; it cost about 30 %
of a REST write (bench/notes.md).

`PooledHTTPHandler` reads the request body on the event loop, then runs the whole synchronous
request in one call on one of `RETROCHAT_HTTP_THREADS` threads: `request_started`, the synchronous
middleware chain and view, and `response.close()` (`request_finished`, which closes a database
connection only once it is older than `CONN_MAX_AGE` or unusable). Each thread therefore keeps its
database connections between requests. The response is then written from the event loop.

The liveness probe (`/v1/health/live`) runs on a thread of its own instead: when every pool thread
is stuck in a request (a lock wait, a database that does not answer), it must still answer, or an
orchestrator would restart a process that is alive (docs/deploy.md). It touches no dependency, so
that thread never waits for one.

A synchronous view cannot be interrupted, so a client that disconnects mid-request does not cancel
it (Django's handler cannot cancel a synchronous view either); the answer to a gone client is
dropped by the server.
"""
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from asgiref.sync import SyncToAsync
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponseBase
from django.urls import set_script_prefix


# Answered on a thread of their own, never queued behind the pool's requests.
OWN_THREAD_PATHS = frozenset({"/v1/health/live"})


class PooledHTTPHandler(ASGIHandler):
    def __init__(self, threads: int) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrochat-http")
        self.probe_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrochat-probe")
        # thread_sensitive=False with our executor: the request runs on a pool thread. SyncToAsync
        # still records the event loop for that thread, so `async_to_sync` inside a view (the
        # on-commit publish) runs on the server's loop and its channel-layer connections.
        self._respond = SyncToAsync(self.respond, thread_sensitive=False, executor=self.executor)
        self._close = SyncToAsync(self.close_response, thread_sensitive=False, executor=self.executor)
        self._respond_probe = SyncToAsync(self.respond, thread_sensitive=False, executor=self.probe_executor)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            respond = self._respond_probe if scope.get("path") in OWN_THREAD_PATHS else self._respond
            response = await respond(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:  # closed once its content has been sent
                    await self._close(response)
        finally:
            body_file.close()

    def respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The whole synchronous request, on a pool thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response: HttpResponseBase
        if request is None:
            response = cast(HttpResponseBase, error_response)  # create_request returns one of the two
        else:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
        if not response.streaming:
            # The content is in memory already: release what the request held (request_finished,
            # database connections past their age) before the bytes go out.
            self.close_response(response)
        return response

    @staticmethod
    def close_response(response: HttpResponseBase) -> None:
        response.close()
