"""The realtime layer's way to the database: `await realtime_db(func)(*args)`.

Like Channels' `database_sync_to_async` (one shared worker thread, off the event loop), but it
keeps that thread's database connections open between calls instead of closing them after every
call. With short-lived connections (CONN_MAX_AGE=0, right for HTTP under ASGI, where each request
runs in a thread of its own) every WebSocket connect or subscribe would pay for a new database
connection: most of the cost of a connect, measured in docs/benchmarks.md. The worker thread lives
as long as the process, so its connections are reused safely; one that failed is replaced.
"""
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from django.db import connections

T = TypeVar("T")


def _drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and connection.errors_occurred and not connection.is_usable():
            connection.close()


def realtime_db(func: Callable[..., T]) -> Callable[..., Any]:
    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> T:
        _drop_broken_connections()
        try:
            return func(*args, **kwargs)
        except Exception:
            # A failed query may have left the connection unusable (the database restarted):
            # close it now, so that the next call opens a fresh one.
            for connection in connections.all(initialized_only=True):
                if connection.connection is not None and not connection.is_usable():
                    connection.close()
            raise

    return SyncToAsync(run, thread_sensitive=True)
