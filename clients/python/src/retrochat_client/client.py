"""The client: one WebSocket to /v1/realtime, reconnected for as long as the client is open.

How it keeps the delivery promise of docs/realtime.md:

- Each subscription remembers the position (epoch, offset) of the newest event it has, and drops
  any event at or before it (de-duplication by offset). Presence events carry no offset and always
  pass.
- After a reconnect, every subscription is sent again with `since` = its position. The server
  answers `recovered: true` and replays what was missed, in order, before anything live; or
  `recovered: false` with the current position, which the subscription hands to the application
  as a `NotRecovered` item (and to `on_not_recovered`): refetch over REST, then carry on.
- Subscriptions are sent again broadest filter first (`*`, then categories, then exact types).
  The server replays, for each new filter, only what the connection's earlier filters did not
  match; in this order every replayed event reaches each subscription from one replay, so each
  subscription's items stay in offset order.
- A subscription whose `subscribe` is in flight after a reconnect buffers the events routed to
  it (another filter's replay can reach it first) and takes them after its own reply.
- A recovered subscription moves its position to the `subscribed` offset only once the replay is
  over (the next frame that is not an older event of that channel): a connection lost in the
  middle of a replay is recovered again from the same place.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.uri import parse_uri

from retrochat_client.types import (
    ClientClosed,
    ConnectionState,
    Event,
    Item,
    NotRecovered,
    Position,
    PresenceSnapshot,
    RetroChatError,
    StateChange,
    Unsubscribed,
)

logger = logging.getLogger("retrochat_client")

ALL_EVENTS = "*"
# Event filter categories and the event types they cover.
CATEGORY_PREFIXES = {"message": "message:", "room": "room:", "activity": "user:", "conversation": "conversation:"}

# Close codes and what the client does about them.
STOP_CODES = frozenset({4001, 4003})  # unauthorized, forbidden origin: retrying the same credential is pointless
BACK_OFF_CODES = frozenset({4029, 1013})  # rate or connection limit, try again later: start further up the backoff
BACK_OFF_FLOOR_STEPS = 3  # after 4029/1013 the first wait is drawn from [0, 8 s] rather than [0, 1 s]
ABNORMAL_CLOSURE = 1006

# Error codes that announce the close that follows: reported with the close, not on their own.
CLOSING_ERRORS = frozenset({"UNAUTHORIZED", "FORBIDDEN_ORIGIN", "SLOW_CONSUMER", "CONNECTION_LIMIT", "MESSAGE_TOO_LARGE"})

TokenProvider = Callable[[], Awaitable[str]]
Callback = Callable[..., Any]


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 30.0, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap, base * 2 ** min(attempt, 32))


def filter_matches(event_filter: str, event_type: str) -> bool:
    if event_filter == ALL_EVENTS:
        return True
    prefix = CATEGORY_PREFIXES.get(event_filter)
    return event_type.startswith(prefix) if prefix else event_filter == event_type


def filter_breadth(event_filter: str) -> int:
    """0 for `*`, 1 for a category, 2 for one event type: the order of resubscribing."""
    if event_filter == ALL_EVENTS:
        return 0
    return 1 if event_filter in CATEGORY_PREFIXES else 2


class _ConnectionLost(Exception):
    """The connection a request was sent on ended before its reply."""


class _End:
    """Queued after a subscription's last item."""


_END = _End()


class Subscription:
    """One `subscribe` of the application: `async for item in sub`, then `await sub.unsubscribe()`.

    Items are `Event`s, plus `NotRecovered` (refetch), `PresenceSnapshot` (after a resubscribe with
    presence) and a final `Unsubscribed` when the server ends the subscription. Iteration stops
    after `unsubscribe()` or `client.close()`, and raises `RetroChatError` when the subscription or
    the client ends on an error (a resubscribe refused with `FORBIDDEN`, a revoked key: 4001).
    """

    def __init__(self, client: Client, channel: str, event: str, since: Position | None) -> None:
        self._client = client
        self.channel = channel  # canonical (`room:7`) once the server has answered
        self.event = event
        self.position: Position | None = since
        self.presence: dict[str, Any] | None = None
        self.duplicates_dropped = 0
        self.active = True
        self._queue: asyncio.Queue[Item | _End] = asyncio.Queue()
        self._error: BaseException | None = None
        self._live = False  # False while a (re)subscribe is in flight: routed events wait in _buffer
        self._buffer: list[Event] = []
        self._pending_head: Position | None = None
        self._ended = False

    def __repr__(self) -> str:
        return f"<Subscription {self.channel} {self.event!r} at {self.position}>"

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call stops too
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item

    async def unsubscribe(self) -> None:
        await self._client._unsubscribe(self)

    # --- driven by the client (synchronously, in frame order) ---------------------------------
    def _apply_reply(self, reply: dict[str, Any], since: Position | None, *, resubscribe: bool) -> NotRecovered | None:
        self.channel = reply["channel"]
        head = Position(reply["epoch"], reply["offset"])
        not_recovered = None
        if since is None:
            self.position = head
        elif reply.get("recovered"):
            self.position = since
            self._pending_head = head  # the replay follows; committed when it is over
        else:
            self.position = head
            not_recovered = NotRecovered(self.channel, head)
            self._queue.put_nowait(not_recovered)
        if "presence" in reply:
            self.presence = reply["presence"]
            if resubscribe:
                self._queue.put_nowait(PresenceSnapshot(self.channel, reply["presence"]))
        self._live = True
        buffered, self._buffer = self._buffer, []
        for event in buffered:
            self._offer(event)
        return not_recovered

    def _offer(self, event: Event) -> None:
        if not self.active:
            return
        if not self._live:
            self._buffer.append(event)
            return
        if event.offset is not None and event.epoch is not None:
            position = self.position
            if position is not None and event.epoch == position.epoch and event.offset <= position.offset:
                self.duplicates_dropped += 1
                return
            self.position = Position(event.epoch, event.offset)
        self._queue.put_nowait(event)

    def _replay_over(self, frame: dict[str, Any]) -> bool:
        """Whether `frame` shows that the replay after this subscription's reply has ended."""
        head = self._pending_head
        if head is None:
            return False
        offset = frame.get("offset")
        in_replay = frame.get("channel") == self.channel and "data" in frame and isinstance(offset, int) and offset <= head.offset
        return not in_replay

    def _commit_head(self) -> None:
        head, self._pending_head = self._pending_head, None
        if head is not None and self.position is not None and head.epoch == self.position.epoch and head.offset > self.position.offset:
            self.position = head

    def _suspend(self) -> None:
        """A new connection: wait for this subscription's reply on it. Events buffered from the old
        connection are dropped: the position did not move past them, so they are replayed again."""
        self._live = False
        self._buffer.clear()
        self._pending_head = None

    def _end(self, error: BaseException | None = None, last: Item | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.active = False
        self._error = error
        if last is not None:
            self._queue.put_nowait(last)
        self._queue.put_nowait(_END)


class _TokenBucket:
    """The server's per-connection frame rate (`connected.limits`), kept on this side too."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = max(rate, 0.1)
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.updated = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class _Connection:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.info: dict[str, Any] | None = None  # the `connected` frame
        self.pending: dict[str, tuple[asyncio.Future[dict[str, Any]], Callable[[dict[str, Any]], None] | None]] = {}
        self.last_error: dict[str, Any] | None = None
        self.bucket = _TokenBucket(20, 40)
        self.max_frame_bytes = 65536
        self.lost = False
        self.was_connected = False

    def started(self, frame: dict[str, Any]) -> None:
        self.info = frame
        limits = frame.get("limits") or {}
        self.bucket = _TokenBucket(limits.get("rate_per_second", 20), limits.get("rate_burst", 40))
        self.max_frame_bytes = limits.get("max_frame_bytes", self.max_frame_bytes)

    def fail_pending(self) -> None:
        self.lost = True
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(_ConnectionLost())
        self.pending.clear()


class Client:
    """`async with Client(url, api_key=…) as client:` or `await client.connect()` … `await client.close()`.

    Credentials: `api_key="rc_…"`, or `token=async_function` called on each (re)connect for a
    fresh short-lived token (`POST /v1/realtime/token`). Either goes in `Authorization: Bearer`.

    Callbacks (plain functions or coroutine functions): `on_state(StateChange)`,
    `on_not_recovered(Subscription, NotRecovered)`, `on_error(RetroChatError)` for errors that no
    call of yours is waiting for (a connection attempt that failed, a close with its reason).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: TokenProvider | None = None,
        on_state: Callback | None = None,
        on_not_recovered: Callback | None = None,
        on_error: Callback | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        heartbeat_margin: float = 10.0,
        open_timeout: float = 10.0,
    ) -> None:
        if (api_key is None) == (token is None):
            raise ValueError("Give exactly one of api_key and token.")
        parse_uri(url)  # a malformed URL is the caller's bug: say so now, not at every retry
        self.url = url
        self._api_key = api_key
        self._token = token
        self._on_state = on_state
        self._on_not_recovered = on_not_recovered
        self._on_error = on_error
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.heartbeat_margin = heartbeat_margin
        self.open_timeout = open_timeout

        self._state = ConnectionState.DISCONNECTED
        self._state_changed = asyncio.Event()
        self._listeners: list[asyncio.Queue[StateChange]] = []
        self._subs: list[Subscription] = []
        self._conn: _Connection | None = None
        self._refs = itertools.count(1)
        self._run_task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed_error: RetroChatError | None = None
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self.connected_frame: dict[str, Any] | None = None

    # --- public API --------------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def user_id(self) -> str | None:
        return self.connected_frame["user_id"] if self.connected_frame else None

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start connecting (and reconnecting); return once connected. Raises `ClientClosed` if
        the client stops first (4001 for this key, 4003)."""
        if self._run_task is None and self._state is not ConnectionState.CLOSED:
            self._run_task = asyncio.create_task(self._run(), name="retrochat-client")
            self._run_task.add_done_callback(self._run_done)
        await self._wait_connected()

    async def close(self) -> None:
        if self._state is ConnectionState.CLOSED:
            return
        self._closing = True
        if self._run_task is not None:
            self._run_task.cancel()
            try:
                await self._run_task
            except asyncio.CancelledError:
                pass
        self._finish(None)

    async def wait_closed(self) -> RetroChatError | None:
        """Wait until the client is closed; the error that closed it, if any."""
        while self._state is not ConnectionState.CLOSED:
            await self._state_changed.wait()
        return self._closed_error

    async def states(self) -> AsyncIterator[StateChange]:
        """The current state, then every change, ending with `closed`."""
        queue: asyncio.Queue[StateChange] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            change = StateChange(self._state, error=self._closed_error)
            while True:
                yield change
                if change.state is ConnectionState.CLOSED:
                    return
                change = await queue.get()
        finally:
            self._listeners.remove(queue)

    async def subscribe(self, channel: str, event: str = ALL_EVENTS, *, since: Position | None = None) -> Subscription:
        """Subscribe (waiting for a connection if there is none); raises `RetroChatError` with the
        server's code (`FORBIDDEN`, `CHANNEL_NOT_FOUND`, `INVALID_CHANNEL`, …). With `since` (a
        position you loaded history up to), missed events come first, or a `NotRecovered` item."""
        sub = Subscription(self, channel, event, since)
        while True:
            conn = await self._wait_connected()
            asked = sub.position
            frame: dict[str, Any] = {"type": "subscribe", "channel": sub.channel, "event": event}
            if asked is not None:
                frame["since"] = asked.as_since()
            try:
                await self._request(conn, frame, on_reply=lambda reply: self._install(sub, reply, asked))
                return sub
            except _ConnectionLost:
                continue  # subscribe again on the next connection

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        return (await self._request_when_connected({"type": "list_subscriptions"}))["subscriptions"]

    async def ping(self) -> str:
        """A round trip to the server; its time (`pong.server_time`)."""
        return (await self._request_when_connected({"type": "ping"}))["server_time"]

    # --- connection loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        retried_token = False
        while True:
            self._set_state(ConnectionState.CONNECTING)
            code, error, was_connected = await self._connect_once()
            if was_connected:
                attempt = 0
                retried_token = False
            if code in STOP_CODES:
                # A token provider gets one fresh token after losing an established connection
                # (a token that expired); a handshake refused with a fresh token is final.
                if code == 4001 and self._token is not None and was_connected and not retried_token:
                    retried_token = True
                else:
                    self._finish(error or RetroChatError("UNAUTHORIZED" if code == 4001 else "FORBIDDEN_ORIGIN", close_code=code))
                    return
            if code in BACK_OFF_CODES:
                attempt = max(attempt, BACK_OFF_FLOOR_STEPS)
            delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)
            attempt += 1
            if error is not None and self._on_error is not None:
                self._call(self._on_error, error)
            self._set_state(ConnectionState.DISCONNECTED, close_code=code, error=error, retry_in=delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> tuple[int | None, RetroChatError | None, bool]:
        """One connection, from handshake to close: (close code, the error that came with it,
        whether it got as far as `connected`)."""
        try:
            credential = self._api_key if self._api_key is not None else await self._token()  # type: ignore[misc]
        except Exception as exc:  # the token endpoint is down too (a restart): retry with backoff
            logger.warning("retrochat_client: the token provider failed: %r", exc)
            return None, RetroChatError("TOKEN_UNAVAILABLE", repr(exc)), False
        try:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {credential}"},
                open_timeout=self.open_timeout,
                ping_interval=None,  # dead peers are detected with protocol-level pings (`_read`)
                close_timeout=2,
                max_size=None,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return None, RetroChatError("CONNECT_FAILED", str(exc) or repr(exc)), False
        conn = _Connection(ws)
        self._conn = conn
        try:
            code = await self._serve(conn)
        finally:
            self._conn = None
            conn.fail_pending()
            await ws.close()
        error = None
        if conn.last_error is not None:
            error = RetroChatError(conn.last_error.get("code", ""), conn.last_error.get("message", ""), close_code=code)
        return code, error, conn.was_connected

    async def _serve(self, conn: _Connection) -> int:
        ws = conn.ws
        try:
            while conn.info is None:
                frame = _decode(await asyncio.wait_for(ws.recv(), self.open_timeout)) or {}
                if frame.get("type") == "connected":
                    conn.started(frame)
                    self.connected_frame = frame
                elif frame.get("type") == "error":
                    conn.last_error = frame
        except TimeoutError:
            ws.transport.abort()
            return ABNORMAL_CLOSURE
        except ConnectionClosed as closed:
            return _close_code(closed)
        reader = asyncio.create_task(self._read(conn), name="retrochat-client-reader")
        try:
            await self._resubscribe(conn)
        except _ConnectionLost:
            pass
        except BaseException:
            reader.cancel()
            raise
        else:
            conn.was_connected = True
            self._set_state(ConnectionState.CONNECTED)
        return await reader

    async def _read(self, conn: _Connection) -> int:
        """Read frames until the connection ends; its close code. No frame for heartbeat_interval +
        margin: ping; still nothing after the margin: the peer is dead (abort, 1006)."""
        assert conn.info is not None
        quiet = conn.info.get("heartbeat_interval", 25) + self.heartbeat_margin
        ws = conn.ws
        probing = False
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), self.heartbeat_margin if probing else quiet)
                except TimeoutError:
                    if probing:
                        logger.info("retrochat_client: no answer to a ping for %ss; reconnecting", self.heartbeat_margin)
                        ws.transport.abort()
                        return ABNORMAL_CLOSURE
                    probing = True
                    try:
                        await asyncio.wait_for(ws.send(json.dumps({"type": "ping"})), self.heartbeat_margin)
                    except TimeoutError:
                        ws.transport.abort()
                        return ABNORMAL_CLOSURE
                    continue
                probing = False
                frame = _decode(raw)
                if frame is not None:
                    self._handle(conn, frame)
        except ConnectionClosed as closed:
            return _close_code(closed)
        finally:
            conn.fail_pending()

    async def _resubscribe(self, conn: _Connection) -> None:
        subs = sorted(self._subs, key=lambda s: filter_breadth(s.event))  # stable: creation order within a breadth
        for sub in subs:
            sub._suspend()
        for sub in subs:
            if not sub.active:
                continue
            since = sub.position
            frame: dict[str, Any] = {"type": "subscribe", "channel": sub.channel, "event": sub.event}
            if since is not None:
                frame["since"] = since.as_since()
            try:
                await self._request(conn, frame, on_reply=lambda reply, sub=sub, since=since: self._reapply(sub, reply, since))
            except RetroChatError as exc:  # FORBIDDEN, CHANNEL_NOT_FOUND … now: this subscription ends
                self._remove(sub)
                sub._end(exc)
        if subs:
            await self._request(conn, {"type": "ping"})  # its pong ends the last replay

    # --- frames ---------------------------------------------------------------------------------
    def _handle(self, conn: _Connection, frame: dict[str, Any]) -> None:
        for sub in self._subs:
            if sub._pending_head is not None and sub._replay_over(frame):
                sub._commit_head()
        frame_type = frame.get("type")
        ref = frame.get("ref")
        entry = conn.pending.pop(str(ref), None) if ref is not None else None
        if entry is not None:
            future, on_reply = entry
            if on_reply is not None and frame_type != "error":
                on_reply(frame)
            if not future.done():
                future.set_result(frame)
            return
        if frame_type == "error":
            conn.last_error = frame
            if frame.get("code") not in CLOSING_ERRORS and self._on_error is not None:
                self._call(self._on_error, RetroChatError(frame.get("code", ""), frame.get("message", ""), ref=ref))
        elif frame_type == "unsubscribed" and frame.get("reason"):
            channel = frame.get("channel")
            for sub in [s for s in self._subs if s.channel == channel]:
                self._remove(sub)
                sub._end(last=Unsubscribed(channel, frame["reason"]))
        elif isinstance(frame_type, str) and ":" in frame_type and "data" in frame:
            event = Event(frame_type, frame.get("channel", ""), frame["data"], frame.get("offset"), frame.get("epoch"))
            for sub in self._subs:
                if sub.channel == event.channel and filter_matches(sub.event, event.type):
                    sub._offer(event)

    def _install(self, sub: Subscription, reply: dict[str, Any], since: Position | None) -> None:
        """A new subscription's reply: from this frame on, events are routed to it."""
        if reply.get("type") != "subscribed":
            return
        self._subs.append(sub)
        self._after_reply(sub, sub._apply_reply(reply, since, resubscribe=False))

    def _reapply(self, sub: Subscription, reply: dict[str, Any], since: Position | None) -> None:
        if reply.get("type") == "subscribed" and sub.active:
            self._after_reply(sub, sub._apply_reply(reply, since, resubscribe=True))

    def _after_reply(self, sub: Subscription, not_recovered: NotRecovered | None) -> None:
        if not_recovered is not None and self._on_not_recovered is not None:
            self._call(self._on_not_recovered, sub, not_recovered)

    async def _request(
        self, conn: _Connection, frame: dict[str, Any], on_reply: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Send a frame and wait for its reply. `on_reply` runs as the reply is read, before any
        later frame. RATE_LIMITED replies are retried; other errors raise RetroChatError."""
        while True:
            if conn.lost:
                raise _ConnectionLost()
            ref = f"c{next(self._refs)}"
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            text = json.dumps({**frame, "ref": ref})
            if len(text.encode()) > conn.max_frame_bytes:
                raise RetroChatError("MESSAGE_TOO_LARGE", f"Frames are limited to {conn.max_frame_bytes} bytes.")
            await conn.bucket.take()
            if conn.lost:
                raise _ConnectionLost()
            conn.pending[ref] = (future, on_reply)
            try:
                await conn.ws.send(text)
            except ConnectionClosed:
                conn.pending.pop(ref, None)
                raise _ConnectionLost() from None
            reply = await future
            if reply.get("type") != "error":
                return reply
            if reply.get("code") == "RATE_LIMITED":
                await asyncio.sleep(1 / conn.bucket.rate)
                continue
            raise RetroChatError(reply.get("code", ""), reply.get("message", ""), ref=reply.get("ref"))

    async def _request_when_connected(self, frame: dict[str, Any]) -> dict[str, Any]:
        while True:
            conn = await self._wait_connected()
            try:
                return await self._request(conn, frame)
            except _ConnectionLost:
                continue

    async def _unsubscribe(self, sub: Subscription) -> None:
        if not sub.active:
            return
        self._remove(sub)
        sub._end()
        if any(s.channel == sub.channel and s.event == sub.event for s in self._subs):
            return  # another subscription of the application still wants this filter
        conn = self._conn
        if conn is None or conn.lost or conn.info is None:
            return  # the next connection will not subscribe it
        try:
            await self._request(conn, {"type": "unsubscribe", "channel": sub.channel, "event": sub.event})
        except _ConnectionLost:
            pass

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    # --- states -----------------------------------------------------------------------------------
    async def _wait_connected(self) -> _Connection:
        while True:
            if self._state is ConnectionState.CLOSED:
                error = self._closed_error
                raise ClientClosed(error.code if error else "CLOSED", error.message if error else "The client is closed.",
                                   close_code=error.close_code if error else None)
            if self._state is ConnectionState.CONNECTED and self._conn is not None:
                return self._conn
            if self._run_task is None:
                raise RuntimeError("Call `await client.connect()` (or use `async with`) first.")
            await self._state_changed.wait()

    def _set_state(self, state: ConnectionState, **details: Any) -> None:
        self._state = state
        change = StateChange(state, **details)
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        for queue in self._listeners:
            queue.put_nowait(change)
        if self._on_state is not None:
            self._call(self._on_state, change)

    def _finish(self, error: RetroChatError | None) -> None:
        if self._state is ConnectionState.CLOSED:
            return
        self._closed_error = error
        for sub in list(self._subs):
            sub._end(error)
        self._subs.clear()
        self._set_state(ConnectionState.CLOSED, close_code=error.close_code if error else None, error=error)

    def _call(self, callback: Callback, *args: Any) -> None:
        """Run an application callback; its failure is logged and does not end the connection."""
        try:
            result = callback(*args)
        except Exception:
            logger.exception("retrochat_client: callback %r failed", callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("retrochat_client: callback failed", exc_info=task.exception())

    def _run_done(self, task: asyncio.Task[None]) -> None:
        """The connection loop ended by itself only through a bug: close, with the reason."""
        if task.cancelled() or task.exception() is None:
            return
        logger.error("retrochat_client: the connection loop failed", exc_info=task.exception())
        self._finish(RetroChatError("INTERNAL_ERROR", f"The client failed: {task.exception()!r}"))


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    """A server frame, or None (logged) for one that is not a JSON object: a server bug, skipped."""
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        logger.error("retrochat_client: skipping a server frame that is not a JSON object: %r", raw[:200])
        return None
    return frame


def _close_code(closed: ConnectionClosed) -> int:
    return closed.rcvd.code if closed.rcvd is not None else ABNORMAL_CLOSURE
