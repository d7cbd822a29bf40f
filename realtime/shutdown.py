"""Graceful shutdown: the server sends every WebSocket a close
frame (uvicorn: 1012, daphne: 1001, retrochat/serve.py) so that clients reconnect elsewhere; this module then waits for
the consumers to finish (each cleans up its own presence on disconnect) and cleans up the presence
of any that did not answer in time, at once rather than by expiry."""
import asyncio
import logging

from realtime import presence, transitions
from realtime.hub import existing_hub

logger = logging.getLogger("retrochat.realtime")

CLOSE_ACK_SECONDS = 2.0


async def drain_connections(timeout: float = CLOSE_ACK_SECONDS) -> None:
    hub = existing_hub()
    if hub is None:
        return
    connections = list(hub.connections)
    logger.info("shutdown: waiting for %d WebSocket connection(s) to close", len(connections))
    waiters = [asyncio.ensure_future(connection.disconnected.wait()) for connection in connections]
    if waiters:
        await asyncio.wait(waiters, timeout=timeout)
        for waiter in waiters:
            waiter.cancel()
    backend = presence.backend()
    for connection in connections:  # those that did not finish disconnecting in time
        if connection.disconnected.is_set():
            continue
        hub.unregister(connection)
        if await backend.close(connection.user_id, connection.connection_id):
            await transitions.went_offline(connection.user_id)
