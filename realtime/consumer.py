"""The WebSocket endpoint /v1/realtime (SPEC §3): protocol only.

Parsing and frame shapes live in realtime/protocol.py, subscription rules in
realtime/authorization.py, handshake credentials in realtime/credentials.py, fan-out in
realtime/hub.py. Events reach this consumer from the hub as pre-encoded text; it checks the
connection's filters and writes the text as it is.
"""
import asyncio
import logging
import time
import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from realtime import authorization, credentials, presence, protocol, transitions
from realtime.channel_names import Channel
from realtime.db import realtime_db
from realtime.hub import Hub, get_hub
from realtime.limits import FrameRateLimiter
from realtime.protocol import ClientFrame, ProtocolError
from retrochat import ids, metrics

logger = logging.getLogger("retrochat.realtime")
access_logger = logging.getLogger("retrochat.access")

# Frame handlers never raise to the client: this is what a bug looks like from outside.
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side; it has been logged."


class RealtimeConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per connection: events arrive through the process hub.
    channel_layer_alias = "retrochat.no-per-connection-channel"

    user_id: int
    api_key_id: int | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' AsyncConsumer.dispatch closes old DB connections on a worker thread before every
        # handler. This consumer reaches the database only through realtime_db (realtime/db.py), which
        # manages the worker thread's connections itself, so skip the thread hop on every frame.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- lifecycle ---------------------------------------------------------------------------
    async def connect(self) -> None:
        self.closing = False
        self.registered = False
        self.filters: dict[Channel, dict[str, frozenset[str]]] = {}
        # The same filter dicts by channel name, for the delivery path (the hub names channels).
        self.filters_by_name: dict[str, dict[str, frozenset[str]]] = {}
        self.joined_groups: set[str] = set()
        self.limiter = FrameRateLimiter(settings.RETROCHAT_RATE_PER_SECOND, settings.RETROCHAT_RATE_BURST)
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.background: set[asyncio.Task] = set()
        self.disconnected = asyncio.Event()
        # While access to a channel is re-checked, its events wait here (by channel name), so that
        # a user who lost the right to it gets none of them: not even the event of the change itself.
        self.held: dict[str, list[str]] = {}
        self.rechecks: dict[Channel, int] = {}  # re-checks in flight, per channel

        creds = await credentials.authenticate(self.scope)
        await self.accept(creds.subprotocol)
        if creds.error == protocol.FORBIDDEN_ORIGIN:
            await self.fail(protocol.FORBIDDEN_ORIGIN, "Session authentication needs an Origin of this site.", protocol.CLOSE_FORBIDDEN_ORIGIN)
            return
        if creds.error or creds.user is None:
            await self.fail(protocol.UNAUTHORIZED, "Missing or invalid credentials.", protocol.CLOSE_UNAUTHORIZED)
            return
        user = creds.user
        connection_id = uuid.uuid4().hex
        # Registering and counting is one atomic step (one Lua script with Redis), so that the
        # per-user limit holds across processes and exactly one connection is the "first".
        outcome = await presence.backend().open(user.pk, connection_id, settings.RETROCHAT_MAX_CONNECTIONS_PER_USER)
        if outcome == presence.LIMIT_REACHED:
            await self.fail(
                protocol.CONNECTION_LIMIT,
                f"At most {settings.RETROCHAT_MAX_CONNECTIONS_PER_USER} open connections per user.",
                protocol.CLOSE_RATE_LIMITED,
            )
            return
        self.user = user
        self.user_id = user.pk
        self.api_key_id = creds.api_key.pk if creds.api_key else None
        self.connection_id = connection_id
        self.registered = True
        self.hub: Hub = await get_hub()
        self.hub.register(self)
        self.opened_at = time.monotonic()
        access_logger.info(
            "WS open %s user %s", connection_id, user.pk,
            extra={"event": "ws_open", "connection_id": connection_id, "user_id": user.pk,
                   "auth": "api_key" if creds.api_key else "session"},
        )
        await self.send_text(
            protocol.connected(
                connection_id=self.connection_id,
                user_id=ids.format_id(ids.USER, user.pk),
                heartbeat_interval=settings.RETROCHAT_HEARTBEAT_INTERVAL,
                limits={
                    "max_subscriptions": settings.RETROCHAT_MAX_SUBSCRIPTIONS,
                    "max_frame_bytes": settings.RETROCHAT_MAX_FRAME_BYTES,
                    "rate_per_second": settings.RETROCHAT_RATE_PER_SECOND,
                },
            )
        )
        if creds.api_key and creds.api_key.expires_at:
            delay = max(0.0, (creds.api_key.expires_at - timezone.now()).total_seconds())
            self.expiry_timer = asyncio.get_running_loop().call_later(
                delay, lambda: self._spawn(self.revoke("The API key of this connection expired."))
            )
        if outcome == presence.WENT_ONLINE:
            await transitions.went_online(user.pk)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.registered:
            duration = round(time.monotonic() - self.opened_at, 1)
            access_logger.info(
                "WS close %s user %s code %s after %ss", self.connection_id, self.user_id, code, duration,
                extra={"event": "ws_close", "connection_id": self.connection_id, "user_id": self.user_id,
                       "code": code, "duration_s": duration},
            )
        try:
            await self._clean_up()
        finally:
            self.disconnected.set()  # graceful shutdown waits for this (realtime/shutdown.py)

    async def _clean_up(self) -> None:
        if self.expiry_timer:
            self.expiry_timer.cancel()
        for task in self.background:
            task.cancel()
        if not self.registered:
            return
        self.registered = False
        self.hub.unregister(self)
        for group in list(self.joined_groups):
            await self.hub.leave(group, self)
        self.joined_groups.clear()
        if await presence.backend().close(self.user_id, self.connection_id):
            await transitions.went_offline(self.user_id)

    async def fail(self, code: str, message: str, close_code: int) -> None:
        """An error frame, then close with `close_code` (handshake failures and revocations)."""
        self.closing = True
        await self.send_error(code, message)
        await self.close(code=close_code)

    async def send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_error(self, code: str, message: str, ref: str | int | None = None) -> None:
        metrics.inc("retrochat_errors_total", f'code="{code}",transport="ws"')
        await self.send_text(protocol.error(code, message, ref))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # --- client frames -----------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        size = len(bytes_data) if bytes_data is not None else _utf8_length(text_data or "")
        if size > settings.RETROCHAT_MAX_FRAME_BYTES:
            await self.fail(
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
                await self.send_error(exc.code, exc.message, exc.ref)
            else:
                await self.rate_limited(exc.ref)
            return
        if not allowed:
            await self.rate_limited(frame.ref)
            return
        try:
            await self.handle(frame)
        except ProtocolError as exc:
            await self.send_error(exc.code, exc.message, exc.ref)
        except Exception:
            logger.exception("realtime: %s frame failed for user %s", frame.type, self.user_id)
            await self.send_error(protocol.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE, frame.ref)

    async def rate_limited(self, ref: str | int | None) -> None:
        if self.limiter.is_abusive():
            await self.fail(protocol.RATE_LIMITED, "Too many frames for too long; reconnect later.", protocol.CLOSE_RATE_LIMITED)
            return
        await self.send_error(
            protocol.RATE_LIMITED, f"Over {settings.RETROCHAT_RATE_PER_SECOND} frames per second; this frame was dropped.", ref
        )

    async def handle(self, frame: ClientFrame) -> None:
        if frame.type == "ping":
            await self.send_text(protocol.pong(frame.ref))
        elif frame.type == "list_subscriptions":
            entries = [(channel, list(filters)) for channel, filters in self.filters.items()]
            await self.send_text(protocol.subscriptions(entries, frame.ref))
        elif frame.type == "subscribe":
            await self.subscribe(frame)
        else:
            await self.unsubscribe(frame)

    def subscription_count(self) -> int:
        return sum(len(filters) for filters in self.filters.values())

    async def subscribe(self, frame: ClientFrame) -> None:
        channel, event = frame.channel, frame.event or protocol.ALL_EVENTS
        assert channel is not None
        already = event in self.filters.get(channel, {})
        if not already and self.subscription_count() >= settings.RETROCHAT_MAX_SUBSCRIPTIONS:
            raise ProtocolError(
                protocol.SUBSCRIPTION_LIMIT,
                f"At most {settings.RETROCHAT_MAX_SUBSCRIPTIONS} subscriptions per connection.",
                frame.ref,
            )
        decision = await realtime_db(authorization.check_subscription)(self.user, channel, event)
        if decision.error == protocol.CHANNEL_NOT_FOUND:
            raise ProtocolError(decision.error, f"{channel} does not exist.", frame.ref)
        if decision.error:
            raise ProtocolError(protocol.FORBIDDEN, f"You may not subscribe to {channel} with event {event!r}.", frame.ref)
        if self.closing:
            return
        filters = self.filters.setdefault(channel, {})
        self.filters_by_name[str(channel)] = filters
        filters[event] = decision.categories
        for category in decision.categories:
            group = channel.group(category)
            if group not in self.joined_groups:
                self.joined_groups.add(group)
                await self.hub.join(group, self)
        # Missed-event replay (SPEC §3.7) is not built yet: a client asking for it is told plainly
        # that nothing was recovered, so that it refetches history over REST.
        recovered = False if frame.since is not None else None
        await self.send_text(protocol.subscribed(channel, event, frame.ref, decision.presence, recovered))

    async def unsubscribe(self, frame: ClientFrame) -> None:
        channel = frame.channel
        assert channel is not None
        filters = self.filters.get(channel)
        if filters is not None:
            if frame.event is None:
                filters.clear()
            else:
                filters.pop(frame.event, None)
            await self._leave_unneeded_groups(channel)
        await self.send_text(protocol.unsubscribed(channel, ref=frame.ref, event=frame.event))

    async def _leave_unneeded_groups(self, channel: Channel) -> None:
        filters = self.filters.get(channel, {})
        needed = set().union(*filters.values()) if filters else set()
        if not filters:
            self.filters.pop(channel, None)
            self.filters_by_name.pop(str(channel), None)
            self.held.pop(str(channel), None)  # nothing held is wanted any more
        for category in channel.categories:
            group = channel.group(category)
            if category not in needed and group in self.joined_groups:
                self.joined_groups.discard(group)
                await self.hub.leave(group, self)

    # --- called by the hub -------------------------------------------------------------------
    async def deliver(self, channel: str, category: str, event_type: str, text: str) -> bool:
        """Write one pre-encoded event frame if any filter of this connection matches it."""
        filters = self.filters_by_name.get(channel)
        if not filters or self.closing:
            return False
        for event_filter, granted in filters.items():
            if category in granted and protocol.filter_matches(event_filter, category, event_type):
                held = self.held.get(channel)
                if held is not None:
                    held.append(text)
                else:
                    await self.base_send({"type": "websocket.send", "text": text})
                return True
        return False

    async def revoke(self, message: str) -> None:
        if not self.closing:
            await self.fail(protocol.UNAUTHORIZED, message, protocol.CLOSE_UNAUTHORIZED)

    async def lose_channel(self, channel: Channel, reason: str, recheck: bool) -> None:
        if channel not in self.filters:
            return
        if recheck:  # a database read: off the hub's delivery loop, holding the channel's events meanwhile
            self.held.setdefault(str(channel), [])
            self.rechecks[channel] = self.rechecks.get(channel, 0) + 1
            self._spawn(self._recheck(channel, reason))
            return
        await self._drop(channel, reason)

    async def _recheck(self, channel: Channel, reason: str) -> None:
        try:
            keep = await realtime_db(authorization.may_keep)(self.user_id, channel)
        except Exception:  # fail closed: the client may subscribe again and be checked again
            logger.exception("realtime: re-checking %s failed for user %s", channel, self.user_id)
            keep = False
        self.rechecks[channel] = self.rechecks.get(channel, 1) - 1
        if not keep:
            await self._drop(channel, reason)
            return
        await self._release(channel)

    async def _release(self, channel: Channel) -> None:
        """Write what was held for a channel, in order, unless a newer re-check still holds it."""
        name = str(channel)
        held = self.held.get(name)
        # Events arriving meanwhile queue behind the held ones; a drop or a newer re-check stops this.
        while held and self.held.get(name) is held and not self.rechecks.get(channel) and not self.closing:
            await self.send_text(held.pop(0))
        if not self.rechecks.get(channel):
            self.rechecks.pop(channel, None)
            if self.held.get(name) is held:
                self.held.pop(name, None)

    async def _drop(self, channel: Channel, reason: str) -> None:
        self.held.pop(str(channel), None)
        if not self.rechecks.get(channel):
            self.rechecks.pop(channel, None)
        if channel not in self.filters or self.closing:
            return
        self.filters[channel].clear()
        await self._leave_unneeded_groups(channel)
        await self.send_text(protocol.unsubscribed(channel, reason=reason))


def _utf8_length(text: str) -> int:
    if len(text) * 4 <= settings.RETROCHAT_MAX_FRAME_BYTES:
        return len(text)  # cannot exceed the limit; skip encoding
    return len(text.encode("utf-8", "surrogatepass"))
