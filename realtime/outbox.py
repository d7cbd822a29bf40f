"""A connection's outgoing frames (slow consumers): queued without waiting, written by one task.

The hub and the consumer only `push`: nothing that delivers to many connections ever waits for one
of them. A writer task, started when the queue becomes non-empty and ended when it is empty again,
writes the frames in order. A peer that does not read makes the server's `send` wait (uvicorn) or
its transport buffer grow (daphne, which never waits): either way the frames stay here, where they
are counted. The connection is a slow consumer when more than `max_bytes` stay queued while
nothing has been written for PROGRESS_GRACE seconds (a client that reads is never closed for a
burst it is taking: a replay, a gap filled from the log), when more than HARD_LIMIT_FACTOR times
`max_bytes` are queued at all, or when a frame is older than `max_seconds`: what is queued is
dropped, the SLOW_CONSUMER error and close 4008 are queued instead, and if they have not been
written `close_grace` seconds later the transport is aborted.
"""
import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger("retrochat.realtime")

# Under daphne a send never waits: past this many bytes in the transport's own buffer, the writer
# waits for it to drain below LOW_WATER, so that a slow peer's frames stay countable here.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
DRAIN_POLL_SECONDS = (0.01, 0.25)  # first and longest wait between checks of the transport buffer
PROGRESS_GRACE = 1.0  # seconds over the byte limit with no frame written before it counts
HARD_LIMIT_FACTOR = 4  # over this many times the byte limit counts at once, progress or not


_last_sized: tuple[str, int] = ("", 0)  # the last non-ASCII text measured, and its size


def wire_size(text: str) -> int:
    """The bytes `text` takes in a text frame (UTF-8), which RETROCHAT_MAX_PENDING_BYTES limits.
    Event frames are not ASCII-escaped (realtime/publish.py): counting characters undercounted an
    emoji-heavy queue fourfold. `isascii()` is O(1); the hub hands one text to every recipient in
    turn, so the one-entry cache encodes a non-ASCII event once per fan-out, not once per socket."""
    global _last_sized
    if text.isascii():
        return len(text)
    if _last_sized[0] is not text:
        _last_sized = (text, len(text.encode("utf-8", "surrogatepass")))
    return _last_sized[1]


class TransportControl(Protocol):
    """What the server underneath lets us do with the socket (realtime/transport.py)."""

    def buffered_bytes(self) -> int: ...
    def closing(self) -> bool: ...
    def abort(self) -> None: ...
    def write_frame(self, frame: bytes) -> bool:
        """Write a complete WebSocket frame now if the socket takes it without waiting; False if not."""
        ...
    def release_handshake(self) -> None:
        """The application no longer needs the handshake request: the server may let it go."""
        ...


class Outbox:
    # One per open connection, idle most of the time: slots, and no queue until something waits.
    __slots__ = (
        "_send", "_transport", "max_bytes", "max_seconds", "close_grace", "_on_slow", "_queue", "pending_bytes",
        "_writer", "closed", "dead", "slow", "_stuck_since", "_progress_at", "_gathered", "_gathered_bytes",
    )

    def __init__(
        self,
        send: Callable[[Any], Awaitable[None]],  # an ASGI send (asgiref types its events as TypedDicts)
        *,
        transport: TransportControl | None,
        max_bytes: int,
        max_seconds: float,
        close_grace: float,
        on_slow: Callable[[], None],
    ) -> None:
        self._send = send
        self._transport = transport
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.close_grace = close_grace
        self._on_slow = on_slow
        # (ASGI message, bytes, queued at); a deque only while frames wait (≈600 bytes even empty).
        self._queue: deque[tuple[dict[str, Any], int, float]] | None = None
        self.pending_bytes = 0
        self._writer: asyncio.Task | None = None
        self.closed = False  # a close is queued (or sent): nothing more is accepted
        self.dead = False  # the transport failed: nothing more will be written
        self.slow = False
        self._stuck_since: float | None = None
        self._progress_at = time.monotonic()  # the last write, or when the backlog began
        self._gathered: list[tuple[str, bytes]] | None = None  # frames to write at the end of this pass
        self._gathered_bytes = 0

    @property
    def transport(self) -> TransportControl | None:
        return self._transport

    # --- queueing (never waits) ----------------------------------------------------------------
    def push(self, text: str, frame: bytes | None = None) -> None:
        """Queue a text frame. `frame`, the same text already framed for the wire (the hub frames an
        event once for all its recipients), goes straight to the socket when nothing is queued
        before it: such frames are gathered until the end of the event loop's current pass and
        written with one system call (`_write_gathered`), so a connection that gets several events
        in one pass (a burst the hub takes from the layer at once, a gap filled from the log) pays
        one write for all of them. The common case costs no task and no per-recipient framing."""
        if self.closed or self.dead:
            return
        if frame is not None and not self._queue and self._transport is not None:
            if self._gathered is None:
                self._gathered, self._gathered_bytes = [], 0
                _gathering_outboxes().append(self)
            self._gathered.append((text, frame))
            self._gathered_bytes += len(frame)
            if self._gathered_bytes > HIGH_WATER:  # bytes the limits do not see: no more than this
                self._write_gathered()
            return
        self._enqueue({"type": "websocket.send", "text": text}, wire_size(text))
        if self._over_limit(time.monotonic()):
            self.close_slow()

    def _write_gathered(self) -> None:
        """Write the frames gathered in this pass at once; if the socket does not take them now
        (it is not writable, or it is closing), they go to the queue instead, ahead of anything
        queued after them."""
        gathered, self._gathered = self._gathered, None
        if not gathered or self.dead or self._transport is None:
            return
        wire = gathered[0][1] if len(gathered) == 1 else b"".join(frame for _, frame in gathered)
        if self._transport.write_frame(wire):
            return
        if self.closed and not self._queue:
            return  # stopped meanwhile: nothing more is written
        now = time.monotonic()
        if not self._queue:
            self._progress_at = now
        if self._queue is None:
            self._queue = deque()
        for text, _ in reversed(gathered):
            size = wire_size(text)
            self._queue.appendleft(({"type": "websocket.send", "text": text}, size, now))
            self.pending_bytes += size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        if self._over_limit(now):
            self.close_slow()

    def _over_limit(self, now: float) -> bool:
        if self.pending_bytes <= self.max_bytes:
            return False
        return now - self._progress_at > PROGRESS_GRACE or self.pending_bytes > HARD_LIMIT_FACTOR * self.max_bytes

    def close(self, code: int, final_text: str | None = None) -> None:
        """Queue an optional last frame and the close; the transport is aborted if they never get out."""
        if self.closed or self.dead:
            return
        if final_text is not None:
            self._enqueue({"type": "websocket.send", "text": final_text}, wire_size(final_text))
        self._enqueue({"type": "websocket.close", "code": code}, 0)
        self.closed = True
        asyncio.get_running_loop().call_later(self.close_grace, self._abort_if_stuck)

    def close_slow(self) -> None:
        """Drop what is queued; SLOW_CONSUMER and close 4008 take its place."""
        if self.closed or self.dead:
            return
        self.slow = True
        self._queue = None
        self._gathered = None
        self.pending_bytes = 0
        self._on_slow()  # the owner queues its error frame and close through close()

    def check_age(self, now: float) -> None:
        """Called periodically (monotonic `now`): a frame queued for longer than `max_seconds` makes
        this a slow consumer; a transport that has been closing for longer than `close_grace` with
        bytes it cannot write (the server's own heartbeat gave up on a peer that does not read) is
        aborted, so that the server reports the disconnect."""
        if self._queue and not self.closed and (now - self._queue[0][2] > self.max_seconds or self._over_limit(now)):
            self.close_slow()
        if self._transport is not None and not self.dead and self._transport.closing() and self._transport.buffered_bytes():
            if self._stuck_since is None:
                self._stuck_since = now
            elif now - self._stuck_since > self.close_grace:
                logger.info("outbox: transport closing for %.1fs with unsent bytes; aborting it", now - self._stuck_since)
                self.abort()
        else:
            self._stuck_since = None

    def _enqueue(self, message: dict[str, Any], size: int) -> None:
        now = time.monotonic()
        if not self._queue:
            self._progress_at = now  # a backlog begins
            if self._queue is None:
                self._queue = deque()
        self._queue.append((message, size, now))
        self.pending_bytes += size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    # --- writing -------------------------------------------------------------------------------
    async def _write(self) -> None:
        try:
            while self._queue and not self.dead:
                message, size, _ = self._queue[0]
                await self._send(message)
                self._progress_at = time.monotonic()
                if self._queue and self._queue[0][0] is message:  # not cleared meanwhile by close_slow()
                    self._queue.popleft()
                    self.pending_bytes -= size
                if message["type"] == "websocket.close":
                    self._queue = None
                    self.pending_bytes = 0
                    return
                await self._wait_for_transport()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer is gone (ClientDisconnected, a reset): the server disconnects us
            logger.debug("outbox: send failed (%s); dropping %d queued frame(s)", exc.__class__.__name__, len(self._queue or ()))
            self.dead = True
            self._queue = None
            self.pending_bytes = 0
        finally:
            self._writer = None
            if not self._queue:
                self._queue = None

    async def _wait_for_transport(self) -> None:
        if self._transport is None or self._transport.buffered_bytes() <= HIGH_WATER:
            return
        delay, longest = DRAIN_POLL_SECONDS
        while not self.dead and self._transport.buffered_bytes() > LOW_WATER:
            await asyncio.sleep(delay)
            delay = min(longest, delay * 2)
            now = time.monotonic()
            if self._queue and not self.closed and (now - self._queue[0][2] > self.max_seconds or self._over_limit(now)):
                self.close_slow()

    def _abort_if_stuck(self) -> None:
        if self.dead or (self._writer is None and not self._queue and not self._still_buffered()):
            return
        logger.info("outbox: close not flushed within %.1fs; aborting the transport", self.close_grace)
        self.abort()

    def _still_buffered(self) -> bool:
        return self._transport is not None and self._transport.buffered_bytes() > 0

    def abort(self) -> None:
        self.dead = True
        self._queue = None
        self._gathered = None
        self.pending_bytes = 0
        if self._writer is not None:
            self._writer.cancel()
        if self._transport is not None:
            try:
                self._transport.abort()
            except Exception:  # already gone
                logger.debug("outbox: abort failed", exc_info=True)

    def stop(self) -> None:
        """The application is done with the connection: stop writing. Bytes the peer never read
        would keep the socket open for ever: the transport is aborted if any are left after the grace."""
        self.closed = True
        self._queue = None
        self._gathered = None
        self.pending_bytes = 0
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        asyncio.get_running_loop().call_later(self.close_grace, self._abort_if_stuck)


# The outboxes that gathered frames in the event loop's current pass, written by one callback at the
# end of it (scheduled with the first of them). Per loop: tests run one loop after another.
_gathering: tuple[asyncio.AbstractEventLoop | None, list[Outbox]] = (None, [])


def _gathering_outboxes() -> list[Outbox]:
    global _gathering
    loop = asyncio.get_running_loop()
    if _gathering[0] is not loop:
        _gathering = (loop, [])
    outboxes = _gathering[1]
    if not outboxes:
        loop.call_soon(_write_all_gathered, outboxes)
    return outboxes


def _write_all_gathered(outboxes: list[Outbox]) -> None:
    pending = outboxes[:]
    outboxes.clear()  # frames gathered from here on start a new pass
    for outbox in pending:
        try:
            outbox._write_gathered()
        except Exception:  # one connection's failure must not cost the others their frames
            logger.exception("outbox: writing gathered frames failed")
