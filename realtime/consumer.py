"""The WebSocket endpoint /v1/realtime: protocol only.

Parsing and frame shapes live in realtime/protocol.py, subscription rules in
realtime/authorization.py, handshake credentials in realtime/credentials.py, subscription state in
realtime/subscriptions.py, fan-out in realtime/hub.py and the outgoing queue in realtime/outbox.py.

Nothing here waits for the client to read: every frame goes through the connection's outbox. And
clean-up (hub, groups, presence) runs when the application ends, whatever ended it.
"""
import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any, cast

from asgiref.typing import WebSocketDisconnectEvent
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from realtime import authorization, credentials, presence, protocol, transitions
from realtime.aio import Flag
from realtime.channel_names import Channel
from realtime.credentials import ConnectionCredentials
from realtime.db import realtime_db
from realtime.hub import Hub, existing_hub, get_hub
from realtime.limits import FrameRateLimiter
from realtime.outbox import Outbox, wire_size, TransportControl
from realtime.protocol import ClientFrame, ProtocolError
from realtime.subscriptions import Frame, Subscriptions
from realtime.transport import TRANSPORT_EXTENSION, websocket_text_frame
from retrochat import ids, metrics, redis_config

logger = logging.getLogger("retrochat.realtime")
access_logger = logging.getLogger("retrochat.access")

# A replay may take up to this many times RETROCHAT_MAX_PENDING_BYTES; more is answered recovered: false.
REPLAY_BUDGET_FACTOR = 2

# Frame handlers never raise to the client: this is what a bug looks like from outside.
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side; it has been logged."


class RealtimeConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per connection: events arrive through the process hub.
    channel_layer_alias = "retrochat.no-per-connection-channel"

    user_id: int
    api_key_id: int | None = None
    connection_id: str = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels' AsyncConsumer.__call__ for a consumer without a channel-layer channel, which runs
        # `receive` in a new task per message under asyncio.wait (await_many_dispatch): here it is
        # awaited directly, one message at a time as there, with no task, waiter or set per message
        # (part of the cost of every connect, and memory held by every idle connection).
        self.scope = scope
        self.channel_layer = None  # type: ignore[assignment]  # types-channels: never None there
        self.base_send = send
        try:
            try:
                while True:
                    await self.dispatch(await receive())
            except StopConsumer:
                pass
        finally:
            # Whatever ended the application (a disconnect, a send that raised, a bug, cancellation),
            # the connection leaves the hub, its channels and the presence registry: no zombies.
            await self._clean_up()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' AsyncConsumer.dispatch closes old DB connections on a worker thread before every
        # handler. This consumer reaches the database only through realtime_db (realtime/db.py), which
        # manages the worker thread's connections itself, so skip the thread hop on every frame.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        # Channels' version (no groups here) then runs close_old_connections() through sync_to_async:
        # a thread hop per disconnect onto the one thread-sensitive worker, which is also the realtime
        # database thread (realtime/db.py), whose connections it closed (CONN_MAX_AGE = 0), so that
        # the next subscribe opened a new one. That thread manages its connections itself.
        await self.disconnect(message["code"])
        raise StopConsumer()

    # --- lifecycle -------------------------------------------------------------------------------
    async def connect(self) -> None:
        self.closing = False
        self.registered = False
        self.presence_pending = False  # open, but not in the presence registry yet (Redis was away)
        self.cleaned_up = False
        self.subscriptions = Subscriptions()
        self.in_hub: set[Channel] = set()  # channels this connection follows through the hub
        self.limiter = FrameRateLimiter(settings.RETROCHAT_RATE_PER_SECOND, settings.RETROCHAT_RATE_BURST)
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.background: set[asyncio.Task] = set()
        self.disconnected = Flag()

        # Before the first await: clean-up stops the outbox, and it runs even when the peer resets
        # during authenticate() or accept() (uvicorn's accept then raises ClientDisconnected).
        self.outbox = Outbox(
            self.base_send,
            transport=cast("TransportControl | None", (self.scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)),
            max_bytes=settings.RETROCHAT_MAX_PENDING_BYTES,
            max_seconds=settings.RETROCHAT_MAX_PENDING_SECONDS,
            close_grace=settings.RETROCHAT_CLOSE_GRACE_SECONDS,
            on_slow=self._slow_consumer,
        )
        forgets = credentials.verified_keys.forgets  # revocations this process has applied so far
        creds = await credentials.authenticate(self.scope)
        await self.accept(creds.subprotocol)
        self._release_handshake()
        if creds.error == protocol.FORBIDDEN_ORIGIN:
            self.fail(protocol.FORBIDDEN_ORIGIN, "Session authentication needs an Origin of this site.", protocol.CLOSE_FORBIDDEN_ORIGIN)
            return
        if creds.error or creds.user is None:
            self.fail(protocol.UNAUTHORIZED, "Missing or invalid credentials.", protocol.CLOSE_UNAUTHORIZED)
            return
        user = creds.user
        connection_id = uuid.uuid4().hex
        # Registering and counting is one atomic step (one Lua script with Redis), so that the
        # per-user limit holds across processes and exactly one connection is the "first".
        try:
            outcome = await presence.backend().open(user.pk, connection_id, settings.RETROCHAT_MAX_CONNECTIONS_PER_USER)
        except presence.UNREACHABLE as exc:
            # Fail open: events reach this connection without Redis (the hub reads the event log),
            # so an outage must not refuse it. Until the registry answers again it is counted by
            # this process only (the limit holds per process: nothing between this check and
            # hub.register() waits) and the user does not show online because of it; the hub's
            # presence round registers it then (Hub._register_pending_presence).
            hub = existing_hub()
            if hub is not None and hub.connections_of(user.pk) >= settings.RETROCHAT_MAX_CONNECTIONS_PER_USER:
                outcome = presence.LIMIT_REACHED
            else:
                logger.warning(
                    "realtime: presence registry unreachable (%s): connection %s accepted unregistered",
                    exc.__class__.__name__, connection_id,
                )
                metrics.inc("retrochat_presence_unregistered_total")
                outcome = presence.UNREGISTERED
        if outcome == presence.LIMIT_REACHED:
            self.fail(
                protocol.CONNECTION_LIMIT,
                f"At most {settings.RETROCHAT_MAX_CONNECTIONS_PER_USER} open connections per user.",
                protocol.CLOSE_RATE_LIMITED,
            )
            return
        self.user_id = user.pk
        self.api_key_id = creds.api_key.pk if creds.api_key else None
        self.connection_id = connection_id
        self.credentials = ConnectionCredentials(
            connection_id, user.pk, self.api_key_id, creds.session_key, creds.token_binding
        )
        self.registered = True  # from here on, clean-up closes the presence entry
        self.presence_pending = outcome == presence.UNREGISTERED
        self.opened_at = time.monotonic()
        try:
            self.hub: Hub = await get_hub()
        except redis_config.UNREACHABLE as exc:
            # Only a process whose hub has not started yet, and whose channel layer is away: it was
            # started during a Redis outage (and is not ready, /v1/health). One that was running when
            # Redis went away keeps serving (events then come from the event log).
            logger.warning("realtime: the channel layer is unreachable (%s); connection %s asked to try again later",
                           exc.__class__.__name__, connection_id)
            self.fail(protocol.INTERNAL_ERROR, "This server cannot reach its channel layer yet; try again shortly.",
                      protocol.CLOSE_TRY_AGAIN_LATER)
            return
        self.hub.register(self)
        access_logger.info(
            "WS open %s user %s", connection_id, user.pk,
            extra={"event": "ws_open", "connection_id": connection_id, "user_id": user.pk,
                   "auth": "api_key" if creds.api_key else "session"},
        )
        self.send_text(
            protocol.connected(
                connection_id=self.connection_id,
                user_id=ids.format_id(ids.USER, user.pk),
                heartbeat_interval=settings.RETROCHAT_HEARTBEAT_INTERVAL,
                limits={
                    "max_subscriptions": settings.RETROCHAT_MAX_SUBSCRIPTIONS,
                    "max_frame_bytes": settings.RETROCHAT_MAX_FRAME_BYTES,
                    "rate_per_second": settings.RETROCHAT_RATE_PER_SECOND,
                    "rate_burst": settings.RETROCHAT_RATE_BURST,
                },
            )
        )
        if creds.api_key and creds.api_key.expires_at:
            delay = max(0.0, (creds.api_key.expires_at - timezone.now()).total_seconds())
            self.expiry_timer = asyncio.get_running_loop().call_later(
                delay, self.revoke, "The API key of this connection expired."
            )
        if outcome == presence.WENT_ONLINE:
            await transitions.went_online(user.pk)
        if credentials.verified_keys.forgets != forgets and await realtime_db(credentials.invalid_connections)([self.credentials]):
            # A revocation was applied while this connect was in flight: the hub closed the sockets
            # it had, perhaps before this one registered (re-validation would find it within
            # RETROCHAT_REVALIDATE_SECONDS, open and subscribing until then).
            self.revoke("The credentials of this connection are no longer valid.")

    def _release_handshake(self) -> None:
        """The credentials are read: the handshake's headers are not needed for the connection's
        life, here or in the server (realtime/transport.py)."""
        if self.outbox.transport is not None:
            self.outbox.transport.release_handshake()
        if self.scope.get("headers"):
            self.scope["headers"] = []

    async def disconnect(self, code: int) -> None:
        if self.registered:
            duration = round(time.monotonic() - self.opened_at, 1)
            access_logger.info(
                "WS close %s user %s code %s after %ss", self.connection_id, self.user_id, code, duration,
                extra={"event": "ws_close", "connection_id": self.connection_id, "user_id": self.user_id,
                       "code": code, "duration_s": duration},
            )
        await self._clean_up()

    async def _clean_up(self) -> None:
        """Idempotent; each step runs even if an earlier one failed."""
        if getattr(self, "cleaned_up", True):  # never connected, or already done
            return
        self.cleaned_up = True
        self.closing = True
        try:
            if self.expiry_timer:
                self.expiry_timer.cancel()
            for task in list(self.background):
                task.cancel()
            self.outbox.stop()
            if not self.registered:
                return
            self.registered = False
            hub = getattr(self, "hub", None)  # None: the hub could not start (Redis away)
            if hub is not None:
                hub.unregister(self)
            for channel in list(self.in_hub):  # only ever joined through the hub
                try:
                    await self.hub.leave(channel, self)
                except Exception:
                    logger.exception("realtime: leaving %s failed for connection %s", channel, self.connection_id)
            self.in_hub.clear()
            try:
                if await presence.backend().close(self.user_id, self.connection_id):
                    await transitions.went_offline(self.user_id)
            except presence.UNREACHABLE as exc:  # the sweep of a process that reaches Redis takes the user offline
                logger.warning("realtime: presence clean-up failed for connection %s (%s)", self.connection_id, exc.__class__.__name__)
            except Exception:
                logger.exception("realtime: presence clean-up failed for connection %s", self.connection_id)
        finally:
            self.disconnected.set()  # graceful shutdown waits for this (realtime/shutdown.py)

    def fail(self, code: str, message: str, close_code: int) -> None:
        """An error frame, then close with `close_code` (handshake failures, revocations, limits)."""
        self.closing = True
        metrics.inc("retrochat_errors_total", f'code="{code}",transport="ws"')
        self.outbox.close(close_code, protocol.error(code, message))

    def _slow_consumer(self) -> None:
        logger.info("realtime: connection %s is a slow consumer; closing it with 4008", self.connection_id)
        metrics.inc("retrochat_slow_consumer_closes_total")
        self.fail(
            protocol.SLOW_CONSUMER,
            "This connection did not read its frames fast enough; reconnect and recover with `since`.",
            protocol.CLOSE_SLOW_CONSUMER,
        )

    def send_text(self, text: str) -> None:
        # Framed here, so that the outbox writes it straight to the socket when it can (no writer
        # task, no trip through the server's ASGI send); queued as text otherwise.
        self.outbox.push(text, websocket_text_frame(text.encode("utf-8", "surrogatepass")))

    def send_error(self, code: str, message: str, ref: str | int | None = None) -> None:
        metrics.inc("retrochat_errors_total", f'code="{code}",transport="ws"')
        self.send_text(protocol.error(code, message, ref))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("realtime: background work failed for connection %s", self.connection_id, exc_info=task.exception())

    # --- client frames ---------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        size = len(bytes_data) if bytes_data is not None else _utf8_length(text_data or "")
        if size > settings.RETROCHAT_MAX_FRAME_BYTES:
            self.fail(
                protocol.MESSAGE_TOO_LARGE,
                f"Frames are limited to {settings.RETROCHAT_MAX_FRAME_BYTES} bytes.",
                protocol.CLOSE_TOO_BIG,
            )
            return
        allowed = self.limiter.allow()
        try:
            if bytes_data is not None:
                raise ProtocolError(protocol.INVALID_FRAME, "Binary frames are not supported; send JSON text frames.")
            frame = protocol.parse_frame(protocol.decode(text_data or ""))
        except ProtocolError as exc:
            if allowed:
                self.send_error(exc.code, exc.message, exc.ref)
            else:
                self.rate_limited(exc.ref)
            return
        if not allowed:
            self.rate_limited(frame.ref)
            return
        try:
            await self.handle(frame)
        except ProtocolError as exc:
            self.send_error(exc.code, exc.message, exc.ref)
        except Exception:
            logger.exception("realtime: %s frame failed for user %s", frame.type, self.user_id)
            self.send_error(protocol.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE, frame.ref)

    def rate_limited(self, ref: str | int | None) -> None:
        if self.limiter.is_abusive():
            self.fail(protocol.RATE_LIMITED, "Too many frames for too long; reconnect later.", protocol.CLOSE_RATE_LIMITED)
            return
        self.send_error(
            protocol.RATE_LIMITED, f"Over {settings.RETROCHAT_RATE_PER_SECOND} frames per second; this frame was dropped.", ref
        )

    async def handle(self, frame: ClientFrame) -> None:
        match frame.type:
            case "ping":
                self.send_text(protocol.pong(frame.ref))
            case "list_subscriptions":
                self.send_text(protocol.subscriptions(self.subscriptions.entries(), frame.ref))
            case "subscribe":
                await self.subscribe(frame)
            case "unsubscribe":
                await self.unsubscribe(frame)
            case _:  # parse_frame admits only the types above
                raise ProtocolError(protocol.UNKNOWN_TYPE, f"Unknown frame type {frame.type!r}.", frame.ref)

    def subscription_count(self) -> int:
        return self.subscriptions.count()

    async def subscribe(self, frame: ClientFrame) -> None:
        channel, event = frame.channel, frame.event or protocol.ALL_EVENTS
        assert channel is not None
        if not self.subscriptions.has(channel, event) and self.subscriptions.count() >= settings.RETROCHAT_MAX_SUBSCRIPTIONS:
            raise ProtocolError(
                protocol.SUBSCRIPTION_LIMIT,
                f"At most {settings.RETROCHAT_MAX_SUBSCRIPTIONS} subscriptions per connection.",
                frame.ref,
            )
        # Hold the channel's frames and follow it before anything is read: every event committed
        # from here on is either in what the database call reads or held until the reply is out.
        sub = self.subscriptions.hold(channel)
        try:
            await self._follow(channel)
            while True:  # an access change during the check makes the check worthless: again
                generation = sub.access_generation
                prepared = await realtime_db(authorization.prepare_subscription)(
                    self.user_id, channel, event, frame.since, settings.RETROCHAT_RECOVERY_MAX_EVENTS
                )
                if sub.access_generation == generation:
                    break
            if prepared.error == protocol.UNAUTHORIZED:
                self.revoke("This user can no longer authenticate.")
                return
            if prepared.error == protocol.CHANNEL_NOT_FOUND:
                raise ProtocolError(prepared.error, f"{channel} does not exist.", frame.ref)
            if prepared.error:
                raise ProtocolError(protocol.FORBIDDEN, f"You may not subscribe to {channel} with event {event!r}.", frame.ref)
            if self.closing:
                return
            assert prepared.position is not None
            if not sub.filters:  # new to this connection: it starts at the stream's head
                sub.epoch, sub.offset = prepared.position.epoch, prepared.position.offset
            replay = self.subscriptions.replay(sub, event, prepared.categories, prepared.missed or [])
            recovered = None if frame.since is None else prepared.missed is not None
            if recovered and sum(map(wire_size, replay)) > REPLAY_BUDGET_FACTOR * settings.RETROCHAT_MAX_PENDING_BYTES:
                # More than the client can be sent at once without being taken for a slow consumer:
                # it refetches over REST instead (recovered: false), as when too many are missing.
                replay, recovered = [], False
            recovered_from = frame.since.offset if recovered and frame.since is not None else sub.offset
            self.subscriptions.add_filter(channel, event, prepared.categories, delivered_after=recovered_from)
            self.send_text(
                protocol.subscribed(
                    channel, event, frame.ref, position=sub.position, recovered=recovered, presence=prepared.presence
                )
            )
            for text in replay:
                self.send_text(text)
            if recovered is not None:
                metrics.inc("retrochat_recoveries_total", f'outcome="{"recovered" if recovered else "not_recovered"}"')
                metrics.inc("retrochat_events_replayed_total", by=len(replay))
        finally:
            for text in self.subscriptions.release(channel):
                self.send_text(text)
            await self._follow_or_leave(channel)

    async def unsubscribe(self, frame: ClientFrame) -> None:
        channel = frame.channel
        assert channel is not None
        self.subscriptions.remove_filter(channel, frame.event)
        self.send_text(protocol.unsubscribed(channel, ref=frame.ref, event=frame.event))
        await self._follow_or_leave(channel)

    async def _follow(self, channel: Channel) -> None:
        if channel in self.in_hub or self.closing:
            return
        self.in_hub.add(channel)
        try:
            await self.hub.join(channel, self)
        except BaseException:
            self.in_hub.discard(channel)
            raise

    async def _follow_or_leave(self, channel: Channel) -> None:
        """Follow the channel through the hub exactly while this connection has an entry for it."""
        if self.subscriptions.get(channel) is not None:
            await self._follow(channel)
        elif channel in self.in_hub:
            self.in_hub.discard(channel)
            await self.hub.leave(channel, self)

    # --- called by the hub (never waits) ---------------------------------------------------------
    def deliver(self, channel: str, frame: Frame) -> bool:
        """Queue one pre-encoded event frame if this connection wants it (and has not had it)."""
        if self.closing or not self.subscriptions.accept(channel, frame):
            return False
        self.outbox.push(frame.text, frame.wire)
        return True

    def check_outbox(self, now: float) -> None:
        self.outbox.check_age(now)

    def revoke(self, message: str) -> None:
        if not self.closing:
            self.fail(protocol.UNAUTHORIZED, message, protocol.CLOSE_UNAUTHORIZED)

    def channel_deleted(self, channel: Channel) -> None:
        self.subscriptions.access_changed(channel)  # a subscribe in flight checks again
        self._drop(channel, "channel_deleted")

    def access_changed(self, channel: Channel) -> None:
        sub = self.subscriptions.access_changed(channel)
        if sub is None or not sub.filters or self.closing:
            return  # nothing installed yet: a subscribe in flight checks again by itself
        # Hold the channel's events until the re-check (a database read) says whether they may go.
        self.subscriptions.hold(channel)
        self._spawn(self._recheck(channel))

    async def _recheck(self, channel: Channel) -> None:
        sub = self.subscriptions.get(channel)
        keep = False
        try:
            while sub is not None:
                generation = sub.access_generation
                try:
                    keep = await realtime_db(authorization.may_keep)(self.user_id, channel)
                except Exception:  # fail closed: the client may subscribe again and be checked again
                    logger.exception("realtime: re-checking %s failed for user %s", channel, self.user_id)
                    keep = False
                if sub.access_generation == generation:
                    break
            if not keep:
                self._drop(channel, "access_revoked")
        finally:
            for text in self.subscriptions.release(channel):
                self.send_text(text)
            await self._follow_or_leave(channel)

    def _drop(self, channel: Channel, reason: str) -> None:
        """The user lost the channel: its filters and held frames go, and the client is told."""
        sub = self.subscriptions.get(channel)
        if sub is None or self.closing:
            return
        had_filters = bool(sub.filters)
        sub.held.clear()
        self.subscriptions.remove_filter(channel, None)
        if had_filters:
            self.send_text(protocol.unsubscribed(channel, reason=reason))
        self._spawn(self._follow_or_leave(channel))


def _utf8_length(text: str) -> int:
    if len(text) * 4 <= settings.RETROCHAT_MAX_FRAME_BYTES:
        return len(text)  # cannot exceed the limit; skip encoding
    return len(text.encode("utf-8", "surrogatepass"))
