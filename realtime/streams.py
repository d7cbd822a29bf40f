"""The event log (realtime/models.py): appending events with gapless per-channel offsets, reading
stream positions, recovery and gap-filling reads, and retention.

Synchronous (it is database code); the realtime layer calls it through `realtime_db`.

Offsets: `append` runs `UPDATE … SET last_offset = last_offset + 1 … RETURNING` on the channel's
stream row inside the writer's transaction. The row stays locked until that transaction ends, so
a second writer to the same channel waits, then takes the next offset: offsets commit in the order
they were taken, and a rolled-back writer gives its offset back (the next writer takes it). On
SQLite the whole database is locked by a writer anyway (`transaction_mode = IMMEDIATE`).
"""
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from realtime.models import Stream, StreamEvent

# The stream of control messages (revocations, access changes): not a client channel.
CONTROL_STREAM = "control"

_STREAMS = Stream._meta.db_table
_EVENTS = StreamEvent._meta.db_table
_TAKE_OFFSET = f"UPDATE {_STREAMS} SET last_offset = last_offset + 1 WHERE channel = %s RETURNING last_offset, epoch"
_CREATE_STREAM = f"INSERT INTO {_STREAMS} (channel, epoch, last_offset) VALUES (%s, %s, 0) ON CONFLICT (channel) DO NOTHING"
# Takes the stream row's lock (until the transaction ends) without taking an offset.
_LOCK_STREAM = f"UPDATE {_STREAMS} SET last_offset = last_offset WHERE channel = %s"
_PRUNE_BEYOND_SIZE = (
    f"DELETE FROM {_EVENTS} WHERE id IN (SELECT e.id FROM {_EVENTS} e JOIN {_STREAMS} s ON s.channel = e.channel"
    f" WHERE e.stream_offset <= s.last_offset - %s ORDER BY e.stream_offset LIMIT %s)"
)
_PRUNE_OLDER_THAN = f"DELETE FROM {_EVENTS} WHERE id IN (SELECT id FROM {_EVENTS} WHERE created_at < %s ORDER BY id LIMIT %s)"
# Oldest first in each batch: what a reader sees between two batches is still one contiguous run per
# channel (a batch that took rows from the middle would show a recovering client a hole).
_CHUNK = 500  # channels per positions query


@dataclass(frozen=True, slots=True)
class Position:
    """Where a stream stands: its epoch and the offset of its newest event (0: none yet)."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    channel: str
    offset: int
    epoch: str
    type: str
    text: str


def new_epoch() -> str:
    return secrets.token_urlsafe(6)


def append(channel: str, event_type: str, encode: Callable[[int, str], str], *, using: str | None = None) -> LoggedEvent:
    """Log one event in the current transaction (a new one in autocommit mode); `encode(offset, epoch)`
    builds the frame's text once its position is known."""
    alias = using or DEFAULT_DB_ALIAS
    with transaction.atomic(using=alias, savepoint=False):
        with connections[alias].cursor() as cursor:
            cursor.execute(_TAKE_OFFSET, [channel])
            row = cursor.fetchone()
            if row is None:  # the channel's first event ever
                cursor.execute(_CREATE_STREAM, [channel, new_epoch()])
                cursor.execute(_TAKE_OFFSET, [channel])
                row = cursor.fetchone()
        offset, epoch = int(row[0]), str(row[1])
        text = encode(offset, epoch)
        StreamEvent.objects.using(alias).create(
            channel=channel, offset=offset, type=event_type, text=text, created_at=timezone.now()
        )
    return LoggedEvent(channel, offset, epoch, event_type, text)


def lock(channel: str, *, using: str | None = None) -> None:
    """Lock the channel's stream now, in the current transaction, as `append` would, without
    logging anything (creating the stream if it has none).

    Why: each `append` holds its stream row until the transaction ends, so two transactions that
    append to the same two streams in opposite orders deadlock on PostgreSQL (one of them fails).
    A change that will log to the control stream only after logging to other channels (deleting a
    room or a user: the cascade logs first) takes the control stream first with this, so that every
    transaction takes the control stream before any channel's (realtime/publish.py `reserve_control`).
    """
    alias = using or DEFAULT_DB_ALIAS
    with transaction.atomic(using=alias, savepoint=False), connections[alias].cursor() as cursor:
        cursor.execute(_LOCK_STREAM, [channel])
        if cursor.rowcount == 0:
            cursor.execute(_CREATE_STREAM, [channel, new_epoch()])
            cursor.execute(_LOCK_STREAM, [channel])


def positions(channels: Iterable[str]) -> dict[str, Position]:
    """The current position of each stream that exists (channels with no event yet are absent)."""
    names = list(channels)
    found: dict[str, Position] = {}
    for start in range(0, len(names), _CHUNK):
        rows = Stream.objects.filter(channel__in=names[start : start + _CHUNK]).values_list("channel", "epoch", "last_offset")
        found.update({channel: Position(epoch, offset) for channel, epoch, offset in rows})
    return found


def ensure_position(channel: str) -> Position:
    """The stream's position, creating the stream (offset 0, a new epoch) if it has no event yet, so
    that a subscriber always gets a real epoch to recover from later."""
    position = positions([channel]).get(channel)
    if position is not None:
        return position
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_CREATE_STREAM, [channel, new_epoch()])
    return positions([channel])[channel]


def read_after(channel: str, offset: int, limit: int) -> list[LoggedEvent]:
    """Up to `limit` logged events of a channel after `offset`, oldest first."""
    rows = (
        StreamEvent.objects.filter(channel=channel, offset__gt=offset)
        .order_by("offset")
        .values_list("offset", "type", "text")[:limit]
    )
    epoch = Stream.objects.filter(channel=channel).values_list("epoch", flat=True).first() or ""
    return [LoggedEvent(channel, offset_, epoch, type_, text) for offset_, type_, text in rows]


def missed_events(channel: str, since: Position, head: Position, max_events: int) -> list[LoggedEvent] | None:
    """The events after `since` up to `head`, or None when they cannot all be given: another epoch,
    an offset ahead of the stream, more than `max_events` missing, or some no longer retained."""
    if since.epoch != head.epoch or since.offset > head.offset or head.offset - since.offset > max_events:
        return None
    if since.offset == head.offset:
        return []
    events = [e for e in read_after(channel, since.offset, head.offset - since.offset) if e.offset <= head.offset]
    expected = list(range(since.offset + 1, head.offset + 1))
    if [event.offset for event in events] != expected:
        return None  # pruned by retention (or being pruned)
    return events


def prune(*, history_size: int, ttl_seconds: int, batch: int = 1000) -> int:
    """Delete what retention no longer keeps, in small batches (each its own short statement, so that
    writers never wait long). Returns the number of events deleted."""
    deleted = 0
    cutoff = timezone.now() - timedelta(seconds=ttl_seconds)
    for statement, argument in ((_PRUNE_BEYOND_SIZE, history_size), (_PRUNE_OLDER_THAN, cutoff)):
        while True:
            with transaction.atomic(), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute(statement, [argument, batch])
                count = cursor.rowcount
            deleted += count
            if count < batch:
                break
    return deleted
