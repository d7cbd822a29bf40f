"""The process-local fan-out hub: one channel-layer channel per process, one group membership per
group per process, and delivery of pre-encoded frames straight to the sockets that want them.

Why not one channel-layer channel per connection, as the Channels tutorial does? Measured in
in the project's architecture notes: per-connection channels cost a Redis subscription per connect, a
msgpack decode per recipient and a thread hop per delivered event (Channels' dispatch closes old
DB connections before every handler). Here an event is decoded once per process and written to
each matching socket; the delivery path touches neither the database nor a thread.

The hub also receives control messages on one process-wide group: key and user revocation,
channel deletion and access re-checks (realtime/publish.py sends them).
"""
import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from realtime import presence, transitions
from realtime.channel_names import Channel, parse_channel
from realtime.publish import CONTROL_GROUP, CONTROL_MESSAGE_TYPE, EVENT_MESSAGE_TYPE
from retrochat import metrics

logger = logging.getLogger("retrochat.realtime")

RECEIVE_RETRY_SECONDS = 0.5


class Connection(Protocol):
    user_id: int
    connection_id: str
    api_key_id: int | None
    disconnected: asyncio.Event

    async def deliver(self, channel: str, category: str, event_type: str, text: str) -> bool: ...
    def subscription_count(self) -> int: ...
    async def revoke(self, message: str) -> None: ...
    async def lose_channel(self, channel: Channel, reason: str, recheck: bool) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel_name: str | None = None
        self.groups: dict[str, set[Connection]] = {}
        self._subscribed: set[str] = set()
        self._membership_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._presence_task: asyncio.Task | None = None
        self.connections: set[Connection] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._task is not None:
                return
            self.channel_name = await self.layer.new_channel(prefix="rc.hub.")
            await self.layer.group_add(CONTROL_GROUP, self.channel_name)
            metrics.registry.gauges["retrochat_connections_open"] = lambda: len(self.connections)
            metrics.registry.gauges["retrochat_subscriptions"] = lambda: sum(
                c.subscription_count() for c in list(self.connections)
            )
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._receive_forever(), name="retrochat-hub")
            self._presence_task = loop.create_task(self._maintain_presence(), name="retrochat-presence")

    async def _receive_forever(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except Exception as exc:
                # The layer's Redis is unreachable (the core layer reads it directly). Keep trying:
                # if this task ended, the process would deliver nothing until restarted.
                logger.warning("hub: channel layer receive failed (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                continue
            try:
                await self._dispatch(message)
            except Exception:  # one bad message must not stop delivery for the whole process
                logger.exception("hub: failed to dispatch a %s message", message.get("type"))

    async def _maintain_presence(self) -> None:
        """Keep this process's connections alive in the registry; take dead processes' users offline."""
        backend = presence.backend()
        last_refresh = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(presence.SWEEP_SECONDS)
            try:
                now = asyncio.get_running_loop().time()
                if now - last_refresh >= presence.REFRESH_SECONDS:
                    await backend.refresh([(c.user_id, c.connection_id) for c in self.connections])
                    last_refresh = now
                for user_id in await backend.sweep():
                    await transitions.went_offline(user_id)
            except Exception:  # Redis briefly down: try again next round, never stop maintaining
                logger.exception("presence: refresh or sweep failed")

    # --- connections and groups --------------------------------------------------------------
    def register(self, connection: Connection) -> None:
        self.connections.add(connection)

    def unregister(self, connection: Connection) -> None:
        self.connections.discard(connection)

    async def join(self, group: str, connection: Connection) -> None:
        members = self.groups.get(group)
        if members:  # this process already receives the group
            members.add(connection)
            return
        async with self._membership_lock:
            members = self.groups.setdefault(group, set())
            if group not in self._subscribed:
                await self.layer.group_add(group, self.channel_name)
                self._subscribed.add(group)
            members.add(connection)

    async def leave(self, group: str, connection: Connection) -> None:
        members = self.groups.get(group)
        if not members or connection not in members:
            return
        members.discard(connection)
        if members:
            return
        async with self._membership_lock:
            # Still empty? Then stop receiving it; a join waiting on the lock re-adds it after.
            if not self.groups.get(group) and group in self._subscribed:
                self._subscribed.discard(group)
                await self.layer.group_discard(group, self.channel_name)
                if not self.groups.get(group):
                    self.groups.pop(group, None)

    def subscribers_of(self, channel: Channel) -> set[Connection]:
        found: set[Connection] = set()
        for category in channel.categories:
            found |= self.groups.get(channel.group(category), set())
        return found

    # --- delivery ----------------------------------------------------------------------------
    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == EVENT_MESSAGE_TYPE:
            members = self.groups.get(message["group"])
            if not members:
                return
            channel, category, event_type, text = message["channel"], message["category"], message["event"], message["text"]
            delivered = 0
            for connection in list(members):
                if await connection.deliver(channel, category, event_type, text):
                    delivered += 1
            if delivered:
                metrics.inc("retrochat_events_delivered_total", by=delivered)
                if "published_at" in message:
                    metrics.registry.observe_latency(max(0.0, time.time() - message["published_at"]))
        elif message.get("type") == CONTROL_MESSAGE_TYPE:
            await self._control(message)

    async def _control(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        if action == "revoke_key":
            targets = [c for c in self.connections if c.api_key_id == message["key_id"]]
            for connection in targets:
                await connection.revoke("The API key of this connection was revoked.")
        elif action == "revoke_user":
            targets = [c for c in self.connections if c.user_id == message["user_id"]]
            for connection in targets:
                await connection.revoke("This user can no longer authenticate.")
        elif action in ("channel_deleted", "access_changed"):
            channel = parse_channel(message["channel"])
            if channel is None:
                return
            only_user = message.get("user_id")
            for connection in list(self.subscribers_of(channel)):
                if only_user is None or connection.user_id == only_user:
                    if action == "channel_deleted":
                        await connection.lose_channel(channel, "channel_deleted", recheck=False)
                    else:
                        await connection.lose_channel(channel, "access_revoked", recheck=True)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def existing_hub() -> Hub | None:
    """The running loop's hub if one was started (for shutdown), without starting one."""
    return _hubs.get(asyncio.get_running_loop())


async def get_hub() -> Hub:
    """The hub of the running event loop (one per server process; one per test loop in tests)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    await hub.start()
    return hub
