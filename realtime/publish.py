"""Publishing: the one way an event or a control message leaves the process that caused it.

`publish_on_commit` is what receivers call, inside the transaction of the change. It logs the event
right away (realtime/streams.py: the event gets its channel's next offset and is encoded once, with
that offset, as this transaction saved the row), and hands it to the channel layer only after the
transaction commits. A rolled-back change leaves no log entry and sends nothing; a send that fails
after commit (Redis away) loses nothing, since every process fills gaps from the log.

`publish_now` sends presence events, which are not logged: their state comes with `subscribed`.
"""
import asyncio
import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any, cast

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from realtime import control, streams
from realtime.control import ControlMessage
from realtime.events import Event
from retrochat import metrics

logger = logging.getLogger("retrochat.realtime")

# Channel-layer message types, read by the hub (realtime/hub.py).
EVENT_MESSAGE_TYPE = "rc.event"
CONTROL_MESSAGE_TYPE = "rc.control"
# Every server process's hub listens on this group for control messages.
CONTROL_GROUP = "rc.control"


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def event_message(channel: str, event_type: str, text: str, offset: int | None = None, epoch: str | None = None) -> dict[str, Any]:
    """What travels through the channel layer: the pre-encoded frame plus what delivery needs."""
    message: dict[str, Any] = {"type": EVENT_MESSAGE_TYPE, "channel": channel, "event": event_type, "text": text}
    if offset is not None:
        message["offset"], message["epoch"] = offset, epoch
    return message


def publish_on_commit(event: Event, *, using: str | None = None) -> None:
    if settings.RETROCHAT_EVENT_LOG:
        logged = streams.append(
            str(event.channel), event.type, lambda offset, epoch: encode(event.frame(offset, epoch)), using=using
        )
        message = event_message(logged.channel, event.type, logged.text, logged.offset, logged.epoch)
    else:  # benchmarks only (RETROCHAT_EVENT_LOG=0): not logged, no offset/epoch: nothing is recoverable
        message = event_message(str(event.channel), event.type, encode(event.frame()))

    def send_after_commit() -> None:  # a function, not a partial: Django logs robust failures by __qualname__
        _send(event.group, message)
        metrics.inc("retrochat_events_published_total", f'type="{event.type}"')

    # robust: a channel-layer failure is logged and does not fail the request that committed.
    transaction.on_commit(send_after_commit, using=using, robust=True)


def control_on_commit(message: ControlMessage, *, using: str | None = None) -> None:
    """Tell every server process, after commit, about a revocation or an access change."""
    payload = control.to_payload(message)
    logged = streams.append(streams.CONTROL_STREAM, control.action_of(message), lambda *_: encode(payload), using=using)
    layer_message = {"type": CONTROL_MESSAGE_TYPE, "offset": logged.offset, "epoch": logged.epoch, "control": payload}

    def send_after_commit() -> None:
        _send(CONTROL_GROUP, layer_message)

    transaction.on_commit(send_after_commit, using=using, robust=True)


def reserve_control(*, using: str | None = None) -> None:
    """Take the control stream's lock now, at the start of a change that will call
    `control_on_commit` only after `publish_on_commit` on other channels (a room or user delete,
    whose cascade logs events first). Every other change logs its control message first; without
    this, such a delete and, say, a member's removal from another room lock the same two streams
    in opposite orders, and PostgreSQL aborts one of them with "deadlock detected"."""
    streams.lock(streams.CONTROL_STREAM, using=using)


def _send(group: str, message: dict[str, Any]) -> None:
    message["published_at"] = time.time()  # for the delivery latency histogram
    loop = _server_loop()
    if loop is not None:
        _sender_for(loop).submit(group, message)
        return
    # No server event loop behind this thread (a management command, a script, the test client):
    # send and wait.
    try:
        async_to_sync(cast(BaseChannelLayer, get_channel_layer()).group_send)(group, message)
    except Exception:  # counted, then raised for on_commit(robust=True) to log
        metrics.inc("retrochat_channel_layer_errors_total", 'operation="send"')
        raise


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The server's running event loop when this thread runs on its behalf (an HTTP request on a
    pool thread, the realtime database thread): asgiref records it for every SyncToAsync call, and
    `async_to_sync` uses the same record to run coroutines there."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


# Sends waiting for the channel layer, per event loop. While the layer hangs (a Redis connection
# that takes nothing: each send fails only at its timeout) the REST writes go on; past this many the
# oldest waiting send is dropped and counted as a failed send, so memory stays bounded. Nothing is
# lost: the event is in the log, from which every hub fills the gap.
MAX_PENDING_SENDS = 1_000


class OrderedSender:
    """After-commit sends handed to the server's event loop, one at a time in the order they were
    handed over, without making the committing thread wait for the channel layer: a REST write
    answers as soon as it has committed, and the thread is free for the next request (the wait cost
    about 8 % of a write, bench/notes.md). Nothing is lost by not waiting: the event is in the log
    already, and a send that fails is counted and logged here like before, and filled from the log by
    every process."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.draining = False
        self.dropped = 0  # since the queue was last empty

    def submit(self, group: str, message: dict[str, Any]) -> None:
        """From any thread."""
        self.loop.call_soon_threadsafe(self._push, group, message)

    def _push(self, group: str, message: dict[str, Any]) -> None:
        if len(self.pending) >= MAX_PENDING_SENDS:
            self.pending.popleft()
            self.dropped += 1
            metrics.inc("retrochat_channel_layer_errors_total", 'operation="send"')
            if self.dropped == 1:
                logger.warning(
                    "After-commit sends are not getting through: %d waiting, the oldest are dropped; "
                    "the event log still has them",
                    len(self.pending) + 1,
                )
        self.pending.append((group, message))
        if not self.draining:
            self.draining = True
            self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.pending:
                group, message = self.pending.popleft()
                try:
                    await cast(BaseChannelLayer, get_channel_layer()).group_send(group, message)
                except Exception:
                    metrics.inc("retrochat_channel_layer_errors_total", 'operation="send"')
                    logger.exception("After-commit send to %s failed; the event log still has it", group)
        finally:
            self.draining = False
            if not self.pending:
                self.dropped = 0


_senders: dict[asyncio.AbstractEventLoop, OrderedSender] = {}
_senders_lock = threading.Lock()


def _sender_for(loop: asyncio.AbstractEventLoop) -> OrderedSender:
    with _senders_lock:
        sender = _senders.get(loop)
        if sender is None:
            for closed in [other for other in _senders if other.is_closed()]:
                del _senders[closed]
            sender = _senders[loop] = OrderedSender(loop)
        return sender


def presence_on_commit(event: Event, *, using: str | None = None) -> None:
    """A presence event caused by a change (a member joined or left a room): not logged, sent after commit."""
    text = encode(event.frame())

    def send_after_commit() -> None:
        _send(event.group, event_message(str(event.channel), event.type, text))

    transaction.on_commit(send_after_commit, using=using, robust=True)


async def publish_now(event: Event) -> None:
    """Send from async code (presence transitions): not logged, not tied to any transaction."""
    message = event_message(str(event.channel), event.type, encode(event.frame()))
    message["published_at"] = time.time()
    try:
        await cast(BaseChannelLayer, get_channel_layer()).group_send(event.group, message)
    except Exception:  # counted, then raised to the caller as before
        metrics.inc("retrochat_channel_layer_errors_total", 'operation="send"')
        raise
    metrics.inc("retrochat_events_published_total", f'type="{event.type}"')
