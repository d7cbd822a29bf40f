"""The process-local fan-out hub: one channel-layer channel per process, one group membership per
followed channel per process, and delivery of pre-encoded frames to the connections that want them.

Why not one channel-layer channel per connection, as the Channels tutorial does? Per-connection
channels cost a Redis subscription per connect, a msgpack decode per recipient and a thread hop per
delivered event. Here an event is decoded once per process and handed to each matching connection.

Delivery never waits for a connection: `Connection.deliver` only queues (realtime/outbox.py), and
every loop over connections isolates a failure to the one connection that raised.

Streams: for every channel some local connection follows, a `StreamCursor` holds the offset this
process delivered last. Events are delivered in offset order, exactly once: an event already
delivered is dropped; one that skips ahead makes the hub read the missing ones from the event log
(realtime/streams.py) and deliver them first. A periodic catch-up reads every followed stream's
position from the database, so events whose channel-layer message was lost (Redis down, a failed
send after commit) or never sent to this process (another process in the embedded default) arrive
within about two poll intervals. Control messages (realtime/control.py) are a stream too.

Group memberships are re-asserted periodically, so that no channel layer can expire them silently.
"""
import asyncio
import json
import logging
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

from channels.layers import get_channel_layer
from django.conf import settings

from realtime import control, presence, streams, transitions
from realtime.aio import Flag
from realtime.channel_names import Channel, parse_channel
from realtime.control import AccessChanged, ChannelDeleted, ControlMessage, RevokeKey, RevokeUser
from realtime.credentials import ConnectionCredentials, invalid_connections, verified_keys
from realtime.db import realtime_db
from realtime.publish import CONTROL_GROUP, CONTROL_MESSAGE_TYPE, EVENT_MESSAGE_TYPE, event_message
from realtime.subscriptions import Frame
from realtime.transport import websocket_text_frame
from retrochat import metrics, redis_config

logger = logging.getLogger("retrochat.realtime")

RECEIVE_RETRY_SECONDS = 0.5
FILL_BATCH = 500
UNLIMITED = 2**31 - 1  # a connection limit that never refuses (for connections already open)
FILL_CHUNK = 50  # events delivered between two yields to the event loop during a fill
FILL_RETRY_SECONDS = 1.0
# How long a message that arrived ahead of its turn waits for the ones before it before they are read
# from the log. Commits on concurrent threads can hand their sends over in a different order than
# their offsets; the missing one then arrives within a moment, and waiting for it saves a database
# read on the realtime thread (a burst of REST writes saw a fill every ≈ 30 messages without it).
REORDER_GRACE_SECONDS = 0.05
GROUP_REASSERT_SECONDS = 300.0
LAYER_TIMEOUT_SECONDS = 2.0  # a group join that takes longer is treated as a layer that cannot be reached
LAYER_UNREACHABLE = redis_config.UNREACHABLE  # the channel layer's Redis cannot be reached


class Connection(Protocol):
    user_id: int
    connection_id: str
    api_key_id: int | None
    presence_pending: bool  # open, but not in the presence registry yet (it was unreachable)
    credentials: ConnectionCredentials
    disconnected: Flag

    def deliver(self, channel: str, frame: Frame) -> bool: ...
    def subscription_count(self) -> int: ...
    def revoke(self, message: str) -> None: ...
    def channel_deleted(self, channel: Channel) -> None: ...
    def access_changed(self, channel: Channel) -> None: ...
    def check_outbox(self, now: float) -> None: ...


class StreamCursor:
    """This process's place in one stream, and the local connections that follow it."""

    def __init__(self, name: str, channel: Channel | None) -> None:
        self.name = name
        self.channel = channel  # None for the control stream
        self.group = channel.group if channel is not None else CONTROL_GROUP
        self.members: set[Connection] = set()
        self.epoch: str | None = None
        self.offset = 0
        self.ready = asyncio.Event()  # set once the starting position is known
        self.failed = False
        self.backlog: list[dict[str, Any]] = []  # live messages waiting for the position or a fill
        self.gap_timer: asyncio.TimerHandle | None = None  # a message arrived early: fill unless the gap closes
        self.filling = False
        self.fill_failed_at = 0.0
        self.head_at_last_poll = 0  # the stream's head one poll ago: not delivered by now means lost
        self.group_pending = False  # the layer could not be asked to join the group: asked again each poll


class Hub:
    def __init__(self) -> None:
        self.layer: Any = get_channel_layer()  # types-channels: BaseChannelLayer has no new_channel(prefix=)
        self.channel_name: str | None = None
        self.connections: set[Connection] = set()
        self._per_user: Counter[int] = Counter()  # open connections of each user here
        self.cursors: dict[str, StreamCursor] = {}
        self._membership_lock = asyncio.Lock()
        self._layer_failed = False  # the last group join failed: the layer's Redis is away (_join_group)
        self._start_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._started = False
        self._presence_refreshed_at = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            self.channel_name = await self.layer.new_channel(prefix="rc.hub.")
            cursor = self.cursors[streams.CONTROL_STREAM] = StreamCursor(streams.CONTROL_STREAM, None)
            await self._join_group(cursor)  # a process that starts during a Redis outage serves too
            self._start_cursor(cursor, (await realtime_db(streams.positions)([cursor.name])).get(cursor.name))
            metrics.registry.gauges["retrochat_connections_open"] = lambda: len(self.connections)
            metrics.registry.gauges["retrochat_subscriptions"] = lambda: sum(
                c.subscription_count() for c in list(self.connections)
            )
            metrics.registry.gauges["retrochat_presence_users_online"] = lambda: len({c.user_id for c in list(self.connections)})
            self._spawn(self._receive_forever(), name="retrochat-hub")
            self._spawn(self._every(settings.RETROCHAT_LOG_POLL_SECONDS, self._catch_up), name="retrochat-catch-up")
            self._spawn(self._every(settings.RETROCHAT_PRESENCE_SWEEP, self._maintain_presence), name="retrochat-presence")
            self._spawn(self._every(settings.RETROCHAT_REVALIDATE_SECONDS, self._revalidate), name="retrochat-revalidate")
            self._spawn(self._every(settings.RETROCHAT_PRUNE_SECONDS, self._prune), name="retrochat-prune")
            self._spawn(self._every(GROUP_REASSERT_SECONDS, self._reassert_groups), name="retrochat-groups")
            self._started = True

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `seconds`, for ever; a failing round is logged and the next one runs."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except redis_config.UNREACHABLE as exc:  # an outage, said once per round without a traceback
                logger.warning("hub: periodic %s failed: Redis unreachable (%s)", job.__name__, exc.__class__.__name__)
            except Exception:
                logger.exception("hub: periodic %s failed", job.__name__)

    async def _receive_forever(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except Exception as exc:
                # The layer's Redis is unreachable (the core layer reads it directly). Keep trying:
                # if this task ended, the process would deliver nothing until restarted.
                logger.warning("hub: channel layer receive failed (%s); retrying", exc.__class__.__name__)
                metrics.inc("retrochat_channel_layer_errors_total", 'operation="receive"')
                await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                continue
            try:
                self._dispatch(message)
            except Exception:  # one bad message must not stop delivery for the whole process
                logger.exception("hub: failed to dispatch a %s message", message.get("type"))

    # --- connections and streams -----------------------------------------------------------------
    def register(self, connection: Connection) -> None:
        if connection not in self.connections:
            self.connections.add(connection)
            self._per_user[connection.user_id] += 1

    def unregister(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._per_user[connection.user_id] -= 1
            if not self._per_user[connection.user_id]:
                del self._per_user[connection.user_id]

    def connections_of(self, user_id: int) -> int:
        """How many connections the user has open on this process (the per-user limit's own count
        while the presence registry, which counts them across processes, cannot be reached)."""
        return self._per_user[user_id]

    async def join(self, channel: Channel, connection: Connection) -> None:
        """Follow `channel` for `connection`; returns once this process knows where its stream stands,
        so that every event after that point reaches the connection."""
        name = str(channel)
        cursor = self.cursors.get(name)
        if cursor is not None:
            cursor.members.add(connection)
            await cursor.ready.wait()
            if cursor.failed:
                raise RuntimeError(f"following {name} failed")
            return
        cursor = self.cursors[name] = StreamCursor(name, channel)
        cursor.members.add(connection)
        try:
            await self._join_group(cursor)
            # Read after joining the group: an event committed in between arrives live (and waits in
            # the backlog until the position is known) or is in the position read here.
            position = (await realtime_db(streams.positions)([name])).get(name)
        except BaseException:
            cursor.failed = True
            cursor.ready.set()
            if self.cursors.get(name) is cursor:
                del self.cursors[name]
            raise
        self._start_cursor(cursor, position)

    async def _join_group(self, cursor: StreamCursor, *, retry: bool = False) -> None:
        """Join the cursor's group on the channel layer. If the layer's Redis cannot be reached the
        channel is followed anyway: its events come from the event log, read every poll
        (`_catch_up`), and the group is asked for again each poll until the layer answers. While a
        join has just failed, a subscribe does not wait for the layer again (up to 2 s each, longer
        behind other calls on the lock): the poll's `retry` is what finds it back."""
        if not retry and self._layer_failed:
            if not cursor.group_pending:
                metrics.inc("retrochat_channel_layer_errors_total", 'operation="join"')
            cursor.group_pending = True
            return
        try:
            # The wait for the lock counts too: a call that holds it may be waiting for a Redis that
            # does not answer (the core layer's connections have no socket timeout).
            async with asyncio.timeout(LAYER_TIMEOUT_SECONDS), self._membership_lock:
                await self.layer.group_add(cursor.group, self.channel_name)
            cursor.group_pending = self._layer_failed = False
        except LAYER_UNREACHABLE as exc:
            self._layer_failed = True
            if not cursor.group_pending:
                logger.warning("hub: joining %s on the channel layer failed (%s); following it through the event log", cursor.name, exc.__class__.__name__)
                metrics.inc("retrochat_channel_layer_errors_total", 'operation="join"')
            cursor.group_pending = True

    async def leave(self, channel: Channel, connection: Connection) -> None:
        name = str(channel)
        cursor = self.cursors.get(name)
        if cursor is None:
            return
        cursor.members.discard(connection)
        if cursor.members or not cursor.ready.is_set():
            return
        del self.cursors[name]
        try:
            async with asyncio.timeout(LAYER_TIMEOUT_SECONDS), self._membership_lock:
                if name not in self.cursors:  # nobody followed it again meanwhile
                    await self.layer.group_discard(cursor.group, self.channel_name)
        except Exception as exc:  # any failure of the layer here (see below)
            self._layer_failed = self._layer_failed or isinstance(exc, LAYER_UNREACHABLE)
            # The channel is left all the same: the layer may keep sending its messages here, and
            # `_dispatch` drops them (no cursor), until it forgets the membership. Not the caller's
            # failure: a client's unsubscribe or close must not wait for Redis, or fail because of it.
            # Not only LAYER_UNREACHABLE: when Redis drops the pubsub layer's connection, redis-py
            # may tear it down under an UNSUBSCRIBE being written (AttributeError: 'NoneType' object
            # has no attribute 'writelines').
            logger.warning("hub: leaving %s on the channel layer failed (%s)", name, exc.__class__.__name__)
            metrics.inc("retrochat_channel_layer_errors_total", 'operation="leave"')

    def subscribers_of(self, channel: Channel) -> set[Connection]:
        cursor = self.cursors.get(str(channel))
        return set(cursor.members) if cursor else set()

    def _start_cursor(self, cursor: StreamCursor, position: streams.Position | None) -> None:
        if position is not None:
            cursor.epoch, cursor.offset = position.epoch, position.offset
            cursor.head_at_last_poll = position.offset
        cursor.ready.set()
        self._process_backlog(cursor)

    # --- delivery --------------------------------------------------------------------------------
    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == EVENT_MESSAGE_TYPE:
            cursor = self.cursors.get(message["channel"])
        elif kind == CONTROL_MESSAGE_TYPE:
            cursor = self.cursors.get(streams.CONTROL_STREAM)
        else:
            return
        if cursor is None:  # no local connection follows this channel (any more)
            return
        if "offset" not in message:  # presence: not logged, delivered as it comes
            self._deliver(cursor, message)
        elif not cursor.ready.is_set() or cursor.filling:
            cursor.backlog.append(message)
        else:
            self._advance(cursor, message)

    def _advance(self, cursor: StreamCursor, message: dict[str, Any]) -> None:
        offset, epoch = message["offset"], message["epoch"]
        if epoch != cursor.epoch:
            if cursor.epoch is not None:
                logger.warning("hub: stream %s was reset (epoch %s → %s)", cursor.name, cursor.epoch, epoch)
            cursor.epoch, cursor.offset = epoch, 0
        if offset <= cursor.offset:
            return  # delivered already, from the log
        if offset > cursor.offset + 1:  # early, or some were lost on the way: wait, then read the log
            cursor.backlog.append(message)
            if cursor.gap_timer is None:
                cursor.gap_timer = asyncio.get_running_loop().call_later(REORDER_GRACE_SECONDS, self._gap_expired, cursor)
            return
        cursor.offset = offset
        self._deliver(cursor, message)
        if cursor.backlog:
            self._take_following(cursor)

    def _take_following(self, cursor: StreamCursor) -> None:
        """Deliver the waiting messages that now follow on from the cursor; a gap keeps the rest waiting."""
        cursor.backlog.sort(key=lambda m: m["offset"])
        waiting: list[dict[str, Any]] = []
        for message in cursor.backlog:
            if message["epoch"] == cursor.epoch and message["offset"] <= cursor.offset:
                continue
            if not waiting and message["epoch"] == cursor.epoch and message["offset"] == cursor.offset + 1:
                cursor.offset = message["offset"]
                self._deliver(cursor, message)
            else:
                waiting.append(message)
        cursor.backlog = waiting
        if not waiting and cursor.gap_timer is not None:
            cursor.gap_timer.cancel()
            cursor.gap_timer = None

    def _gap_expired(self, cursor: StreamCursor) -> None:
        cursor.gap_timer = None
        if self.cursors.get(cursor.name) is cursor and cursor.backlog and not cursor.filling:
            self._fill(cursor)

    def _deliver(self, cursor: StreamCursor, message: dict[str, Any]) -> None:
        if cursor.channel is None:
            self._apply_control(message["control"])
            return
        event_type = message["event"]
        text = message["text"]
        frame = Frame(
            cursor.channel.category_of(event_type), event_type, text, message.get("offset"), message.get("epoch"),
            websocket_text_frame(text.encode("utf-8", "surrogatepass")),
        )
        delivered = 0
        for connection in list(cursor.members):
            try:
                if connection.deliver(cursor.name, frame):
                    delivered += 1
            except Exception:  # this connection's bug must not cost the others their events
                logger.exception("hub: delivering %s to connection %s failed", event_type, connection.connection_id)
        if delivered:
            metrics.inc("retrochat_events_delivered_total", by=delivered)
            if "published_at" in message:
                metrics.registry.observe_latency(max(0.0, time.time() - message["published_at"]))

    def _process_backlog(self, cursor: StreamCursor) -> None:
        backlog, cursor.backlog = cursor.backlog, []
        for message in sorted(backlog, key=lambda m: m["offset"]):
            if cursor.filling:  # a gap started another fill: the rest waits for it
                cursor.backlog.append(message)
            else:
                self._advance(cursor, message)

    # --- reading the log -------------------------------------------------------------------------
    def _fill(self, cursor: StreamCursor) -> None:
        if cursor.filling or time.monotonic() - cursor.fill_failed_at < FILL_RETRY_SECONDS:
            return
        cursor.filling = True
        self._spawn(self._fill_from_log(cursor), name=f"retrochat-fill-{cursor.name}")

    async def _fill_from_log(self, cursor: StreamCursor) -> None:
        """Deliver what the log has after the cursor, then the live messages that waited meanwhile."""
        try:
            while True:
                events = await realtime_db(streams.read_after)(cursor.name, cursor.offset, FILL_BATCH)
                for index, event in enumerate(events, start=1):
                    if event.epoch != cursor.epoch:
                        cursor.epoch = event.epoch
                    if event.offset > cursor.offset:
                        cursor.offset = event.offset
                        self._deliver(cursor, self._message_from_log(cursor, event))
                    if index % FILL_CHUNK == 0:
                        # Let the connections' writers take what was just queued before the next
                        # chunk: a big fill must not look like a slow consumer to a client that reads.
                        await asyncio.sleep(0)
                if len(events) < FILL_BATCH:
                    break
            metrics.inc("retrochat_gap_fills_total")
        except Exception as exc:  # the database is unreachable: the next catch-up round tries again
            logger.warning("hub: reading %s from the event log failed (%s)", cursor.name, exc.__class__.__name__)
            cursor.fill_failed_at = time.monotonic()
            cursor.filling = False
            return
        cursor.filling = False
        self._process_backlog(cursor)

    @staticmethod
    def _message_from_log(cursor: StreamCursor, event: streams.LoggedEvent) -> dict[str, Any]:
        if cursor.channel is None:
            return {"type": CONTROL_MESSAGE_TYPE, "offset": event.offset, "epoch": event.epoch, "control": json.loads(event.text)}
        return event_message(event.channel, event.type, event.text, event.offset, event.epoch)

    async def _catch_up(self) -> None:
        """Fill every followed stream whose head, as read one poll ago, has still not been delivered;
        and close connections whose queued frames are too old (slow consumers)."""
        now = time.monotonic()
        for connection in list(self.connections):
            try:
                connection.check_outbox(now)
            except Exception:
                logger.exception("hub: checking the outbox of %s failed", connection.connection_id)
        ready = [c for c in self.cursors.values() if c.ready.is_set()]
        for cursor in [c for c in ready if c.group_pending]:
            await self._join_group(cursor, retry=True)
            if cursor.group_pending:
                break  # the layer is still away: the next poll asks again
        heads = await realtime_db(streams.positions)([c.name for c in ready])
        for cursor in ready:
            head = heads.get(cursor.name)
            if head is None or self.cursors.get(cursor.name) is not cursor:
                continue
            if head.epoch != cursor.epoch:
                if cursor.epoch is not None:
                    cursor.offset = 0
                cursor.epoch = head.epoch
            if cursor.offset < min(head.offset, cursor.head_at_last_poll):
                self._fill(cursor)
            cursor.head_at_last_poll = head.offset

    # --- control ---------------------------------------------------------------------------------
    def _apply_control(self, payload: dict[str, Any]) -> None:
        message = control.from_payload(payload)
        if message is None:
            logger.warning("hub: unknown control message %r", payload.get("action"))
            return
        match message:  # a revoked key or user must not connect again from this process's cache
            case RevokeKey(key_id=key_id):
                verified_keys.forget_key(key_id)
            case RevokeUser(user_id=user_id):
                verified_keys.forget_user(user_id)
        for connection in self._targets(message):
            try:
                self._control_one(message, connection)
            except Exception:
                logger.exception("hub: applying %s to connection %s failed", control.action_of(message), connection.connection_id)

    def _targets(self, message: ControlMessage) -> list[Connection]:
        match message:
            case RevokeKey(key_id=key_id):
                return [c for c in self.connections if c.api_key_id == key_id]
            case RevokeUser(user_id=user_id):
                return [c for c in self.connections if c.user_id == user_id]
            case ChannelDeleted(channel=name) | AccessChanged(channel=name):
                channel = parse_channel(name)
                targets = self.subscribers_of(channel) if channel else set()
                only = getattr(message, "user_id", None)
                return [c for c in targets if only is None or c.user_id == only]
        return []

    @staticmethod
    def _control_one(message: ControlMessage, connection: Connection) -> None:
        match message:
            case RevokeKey():
                connection.revoke("The API key of this connection was revoked.")
            case RevokeUser():
                connection.revoke("This user can no longer authenticate.")
            case ChannelDeleted(channel=name):
                connection.channel_deleted(cast(Channel, parse_channel(name)))  # a valid name: it had subscribers
            case AccessChanged(channel=name):
                connection.access_changed(cast(Channel, parse_channel(name)))  # a valid name: it had subscribers

    # --- periodic work ---------------------------------------------------------------------------
    async def _maintain_presence(self) -> None:
        """Keep this process's connections alive in the registry; take dead processes' users offline."""
        backend = presence.backend()
        await self._register_pending_presence(backend)
        now = time.monotonic()
        if now - self._presence_refreshed_at >= presence.refresh_seconds():
            registered = [c for c in self.connections if not c.presence_pending]
            gone = set(await backend.refresh([(c.user_id, c.connection_id) for c in registered]))
            self._presence_refreshed_at = now
            # Swept while this process could not reach Redis for longer than the TTL (its users went
            # offline): registered again, as if accepted during the outage, while they are still open.
            for connection in registered:
                if (connection.user_id, connection.connection_id) in gone and connection in self.connections:
                    connection.presence_pending = True
            if gone:
                await self._register_pending_presence(backend)
        for user_id in await backend.sweep():
            await transitions.went_offline(user_id)

    async def _register_pending_presence(self, backend: presence.LocalPresence | presence.RedisPresence) -> None:
        """Register the connections accepted while the registry was unreachable, now that it may answer
        (it raises otherwise, and the next round tries again). They are open already: no limit applies
        to them. A connection that closed while it was being registered has its entry closed again, so
        that it does not keep its user online until the entry expires."""
        for connection in [c for c in self.connections if c.presence_pending]:
            outcome = await backend.open(connection.user_id, connection.connection_id, UNLIMITED)
            connection.presence_pending = False
            if connection not in self.connections:  # closed meanwhile: its clean-up found no entry
                last = await backend.close(connection.user_id, connection.connection_id)
                # Online and offline again unseen when this entry made the user online; but if the
                # user's other connections closed meanwhile (this entry kept the user online), the
                # user is offline now.
                if last and outcome != presence.WENT_ONLINE:
                    await transitions.went_offline(connection.user_id)
            elif outcome == presence.WENT_ONLINE:
                await transitions.went_online(connection.user_id)

    async def _revalidate(self) -> None:
        """Close connections whose credentials no longer hold (revoked or expired key, inactive user,
        ended session), whatever way that happened: one batched query for all connections."""
        connections = list(self.connections)
        if not connections:
            return
        invalid = await realtime_db(invalid_connections)([c.credentials for c in connections])
        metrics.inc("retrochat_credential_revalidations_total")
        for connection in connections:
            if connection.connection_id in invalid:
                # Found here before the revocation's control message (or with none: a change made
                # with QuerySet.update()): a new connect must not be let in from the cache either.
                verified_keys.forget_user(connection.user_id)
                try:
                    connection.revoke("The credentials of this connection are no longer valid.")
                except Exception:
                    logger.exception("hub: revoking connection %s failed", connection.connection_id)

    async def _prune(self) -> None:
        deleted = await realtime_db(streams.prune)(
            history_size=settings.RETROCHAT_HISTORY_SIZE, ttl_seconds=settings.RETROCHAT_HISTORY_TTL
        )
        if deleted:
            logger.info("event log: pruned %d event(s)", deleted)

    async def _reassert_groups(self) -> None:
        """Join every followed group again: a layer that expires memberships (the in-memory layer
        when a message expires, channels-redis' core layer after `group_expiry`) cannot lose one."""
        async with self._membership_lock:
            for group in {CONTROL_GROUP, *(c.group for c in self.cursors.values())}:
                # Bounded: joins and leaves wait for this lock (a Redis that does not answer raises).
                await asyncio.wait_for(self.layer.group_add(group, self.channel_name), LAYER_TIMEOUT_SECONDS)


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
