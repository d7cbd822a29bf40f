"""The event log at the database level (realtime/streams.py): gapless per-channel offsets in commit
order, stream positions, recovery reads, and retention under concurrent writers.

Concurrent tests use real threads, each with its own database connection: PostgreSQL when
DATABASE_URL names it (row locks on the stream row), SQLite otherwise (the database write lock).
"""
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_delete
from django.utils import timezone

from realtime import streams
from realtime.models import Stream, StreamEvent
from realtime.streams import Position
from rooms import services as room_services
from rooms.models import Membership, Room
from tests import factories

CHANNEL = "room:9001"
OTHER = "room:9002"


def log(channel: str = CHANNEL, event_type: str = "message:new") -> streams.LoggedEvent:
    return streams.append(channel, event_type, lambda offset, epoch: json.dumps({"offset": offset, "epoch": epoch}))


def stored(channel: str = CHANNEL) -> list[int]:
    return list(StreamEvent.objects.filter(channel=channel).order_by("offset").values_list("offset", flat=True))


def in_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run `target(i)` in `count` threads, each on its own database connection; the errors raised."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread never finished"
    return errors


def alongside(job: Callable[[int], None], work: Callable[[], list[BaseException]]) -> list[BaseException]:
    """Run `job(0)` in a thread of its own while `work()` runs; `job` loops until `DONE` is set, which happens when `work()` returns.
    The errors of both."""
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.extend(in_threads(1, job)))
    thread.start()
    try:
        errors.extend(work())
    finally:
        DONE.set()
        thread.join(timeout=60)
        DONE.clear()
    return errors


DONE = threading.Event()


# --- offsets -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_offsets_are_consecutive_per_channel_starting_at_1_under_one_stable_epoch():
    logged = [log() for _ in range(5)]
    assert [e.offset for e in logged] == [1, 2, 3, 4, 5]
    assert len({e.epoch for e in logged}) == 1
    epoch = logged[0].epoch
    assert epoch and len(epoch) <= 32
    # The frame was encoded with its own position.
    assert [json.loads(e.text) for e in logged] == [{"offset": n, "epoch": epoch} for n in range(1, 6)]
    assert stored() == [1, 2, 3, 4, 5]
    assert streams.positions([CHANNEL]) == {CHANNEL: Position(epoch, 5)}


@pytest.mark.django_db
def test_each_channel_has_its_own_offsets_and_epoch():
    a1, b1, a2, b2, b3 = log(CHANNEL), log(OTHER), log(CHANNEL), log(OTHER), log(OTHER)
    assert [(e.channel, e.offset) for e in (a1, b1, a2, b2, b3)] == [
        (CHANNEL, 1), (OTHER, 1), (CHANNEL, 2), (OTHER, 2), (OTHER, 3),
    ]
    assert a1.epoch == a2.epoch and b1.epoch == b2.epoch == b3.epoch
    assert streams.positions([CHANNEL, OTHER, "room:9003"]) == {
        CHANNEL: Position(a1.epoch, 2), OTHER: Position(b1.epoch, 3),
    }


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_entry_and_gives_its_offset_back():
    first = log()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            assert log().offset == 2
            raise RuntimeError("roll back")
    assert stored() == [1]
    assert streams.positions([CHANNEL]) == {CHANNEL: Position(first.epoch, 1)}
    again = log()
    assert (again.offset, again.epoch) == (2, first.epoch)
    assert stored() == [1, 2]


@pytest.mark.django_db
def test_a_rolled_back_first_event_leaves_no_stream_behind():
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            log()
            raise RuntimeError("roll back")
    assert streams.positions([CHANNEL]) == {}
    assert log().offset == 1


@pytest.mark.django_db
def test_ensure_position_creates_an_empty_stream_once_and_the_first_event_keeps_its_epoch():
    position = streams.ensure_position(CHANNEL)
    assert position.offset == 0 and position.epoch
    assert streams.ensure_position(CHANNEL) == position
    first = log()
    assert (first.offset, first.epoch) == (1, position.epoch)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_one_channel_get_gapless_offsets_committed_in_order():
    """Writers hold their transaction open a little after taking an offset; an observer reading the
    log meanwhile must only ever see 1..n: a lower offset never commits after a higher one."""
    writers, per_writer = 4, 25
    taken: list[int] = []
    taken_lock = threading.Lock()
    snapshots: list[list[int]] = []

    def write(i: int) -> None:
        for n in range(per_writer):
            with transaction.atomic():
                offset = log().offset
                with taken_lock:
                    taken.append(offset)
                if n % 3 == 0:
                    time.sleep(0.002)  # commit late: a writer behind this one must wait for it

    def observe(_: int) -> None:
        while not DONE.is_set():
            snapshots.append(stored())

    assert alongside(observe, lambda: in_threads(writers, write)) == []
    total = writers * per_writer
    assert sorted(taken) == list(range(1, total + 1))
    assert stored() == list(range(1, total + 1))
    assert snapshots, "the observer never read the log"
    for seen in snapshots:
        assert seen == list(range(1, len(seen) + 1)), f"a reader saw a gap: {seen}"


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_read_after_returns_the_events_after_an_offset_oldest_first_up_to_a_limit():
    logged = [log() for _ in range(5)]
    assert [e.offset for e in streams.read_after(CHANNEL, 2, 10)] == [3, 4, 5]
    assert streams.read_after(CHANNEL, 0, 2) == logged[:2]
    assert streams.read_after(CHANNEL, 5, 10) == []
    assert streams.read_after("room:9999", 0, 10) == []


@pytest.mark.django_db
def test_missed_events_recovers_what_is_retained_and_refuses_everything_else():
    logged = [log() for _ in range(5)]
    epoch = logged[0].epoch
    head = Position(epoch, 5)
    assert streams.missed_events(CHANNEL, Position(epoch, 2), head, 10) == logged[2:]
    assert streams.missed_events(CHANNEL, Position(epoch, 0), head, 10) == logged
    assert streams.missed_events(CHANNEL, Position(epoch, 5), head, 10) == []
    assert streams.missed_events(CHANNEL, Position(epoch, 2), head, 3) == logged[2:]  # exactly the maximum
    assert streams.missed_events(CHANNEL, Position(epoch, 1), head, 3) is None  # one more than the maximum
    assert streams.missed_events(CHANNEL, Position("another", 2), head, 10) is None
    assert streams.missed_events(CHANNEL, Position(epoch, 6), head, 10) is None  # ahead of the stream
    # Events after the head read by the caller (committed since) are left to live delivery.
    log()
    assert streams.missed_events(CHANNEL, Position(epoch, 3), head, 10) == logged[3:]
    streams.prune(history_size=3, ttl_seconds=3600)  # keeps 4, 5, 6
    assert streams.missed_events(CHANNEL, Position(epoch, 3), Position(epoch, 6), 10) == [
        *logged[3:], streams.read_after(CHANNEL, 5, 1)[0]
    ]
    assert streams.missed_events(CHANNEL, Position(epoch, 2), Position(epoch, 6), 10) is None  # 3 was pruned


# --- retention ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_keeps_the_newest_events_of_each_channel():
    for _ in range(7):
        log(CHANNEL)
    for _ in range(2):
        log(OTHER)
    assert streams.prune(history_size=3, ttl_seconds=3600, batch=2) == 4
    assert stored(CHANNEL) == [5, 6, 7]
    assert stored(OTHER) == [1, 2]
    assert streams.prune(history_size=3, ttl_seconds=3600) == 0
    # Offsets carry on where they were, under the same epoch.
    epoch = streams.positions([CHANNEL])[CHANNEL].epoch
    assert (log(CHANNEL).offset, streams.positions([CHANNEL])[CHANNEL]) == (8, Position(epoch, 8))


@pytest.mark.django_db
def test_prune_deletes_events_older_than_the_ttl():
    for _ in range(4):
        log()
    StreamEvent.objects.filter(offset__lte=3).update(created_at=timezone.now() - timedelta(hours=2))
    assert streams.prune(history_size=1000, ttl_seconds=3600, batch=2) == 3
    assert stored() == [4]
    assert Stream.objects.get(channel=CHANNEL).last_offset == 4


@pytest.mark.django_db(transaction=True)
def test_pruning_while_writers_append_fails_no_writer_and_keeps_the_newest_contiguous_offsets():
    channels = [f"room:{9100 + i}" for i in range(3)]
    writers, per_writer, keep = 3, 40, 5
    pruned: list[int] = []
    snapshots: list[dict[str, list[int]]] = []

    pruning = threading.Event()

    def write(i: int) -> None:
        pruning.wait(10)  # the writers start once the pruner runs, so that both really overlap
        for n in range(per_writer):
            log(channels[(i + n) % len(channels)])
            if n == per_writer // 2:
                pruned_once.wait(10)  # and one prune at least lands in the middle of the writes

    pruned_once = threading.Event()

    def prune_and_look(_: int) -> None:
        pruning.set()
        while not DONE.is_set():
            pruned.append(streams.prune(history_size=keep, ttl_seconds=3600, batch=7))
            snapshots.append({channel: stored(channel) for channel in channels})
            if any(pruned):
                pruned_once.set()

    assert alongside(prune_and_look, lambda: in_threads(writers, write)) == []
    assert len(pruned) > 1 and sum(pruned) > 0, "pruning never ran alongside the writers"
    for snapshot in snapshots:  # what a reader sees is always one contiguous run per channel
        for channel, offsets in snapshot.items():
            if offsets:
                assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), (channel, offsets)
    streams.prune(history_size=keep, ttl_seconds=3600)
    heads = streams.positions(channels)
    assert sum(head.offset for head in heads.values()) == writers * per_writer
    for channel in channels:
        last = heads[channel].offset
        assert stored(channel) == list(range(last - keep + 1, last + 1))


@pytest.mark.django_db
def test_lock_creates_a_missing_stream_and_takes_no_offset():
    with transaction.atomic():
        streams.lock(CHANNEL)
    position = streams.positions([CHANNEL])[CHANNEL]
    assert position.offset == 0 and position.epoch
    with transaction.atomic():
        streams.lock(CHANNEL)
        first = log()
    assert (first.offset, first.epoch) == (1, position.epoch)


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL to PostgreSQL (SQLite serializes writers with one lock)")
@pytest.mark.django_db(transaction=True)
def test_deleting_a_room_while_a_member_is_removed_from_another_private_room_does_not_deadlock():
    """Deleting a room logs room:deleted on each member's feed (the cascade), then its control
    message; removing a member from a private room logs its control message first, then the
    member's feed. Each append holds its stream until commit: without one lock order, PostgreSQL
    aborts one of the two with "deadlock detected"."""
    ada, bob = factories.make_user("ada"), factories.make_user("bob")
    doomed = factories.make_room(ada, "doomed", members=(bob,))
    private = factories.make_room(ada, "private", is_private=True, members=(bob,))
    holding, release = threading.Event(), threading.Event()

    def pause(sender: type, instance: Membership, **kwargs: object) -> None:
        if (instance.room_id, instance.user_id) == (doomed.pk, bob.pk):
            holding.set()  # the delete has logged on bob's feed: it holds his stream
            release.wait(10)

    post_delete.connect(pause, sender=Membership, dispatch_uid="test-pause")
    errors: list[BaseException] = []
    try:
        deleting = threading.Thread(target=lambda: errors.extend(in_threads(1, lambda _: room_services.room_delete(room=Room.objects.get(pk=doomed.pk)))))
        deleting.start()
        assert holding.wait(10), "the room delete never reached bob's membership"
        removal = Membership.objects.get(room=private, user=bob)
        removing = threading.Thread(target=lambda: errors.extend(in_threads(1, lambda _: room_services.membership_remove(membership=removal, reason="removed"))))
        removing.start()
        deadline = time.monotonic() + 10
        while _lock_waiters() == 0:  # the removal now waits for a stream the delete holds
            assert time.monotonic() < deadline, "the removal never waited for the delete"
            time.sleep(0.01)
        release.set()
        deleting.join(timeout=30)
        removing.join(timeout=30)
    finally:
        release.set()
        post_delete.disconnect(sender=Membership, dispatch_uid="test-pause")
    assert errors == []
    assert not Room.objects.filter(pk=doomed.pk).exists()
    assert not Membership.objects.filter(room=private, user=bob).exists()
