"""The hub delivers each channel's events in offset order: a message that arrives ahead of its turn
waits a moment for the ones before it (commits on concurrent threads hand their sends over in any
order) and only then are the missing ones read from the event log."""
import pytest

from realtime import channel_names
from realtime.hub import Hub, StreamCursor
from realtime.publish import event_message


class Recorder:
    """A connection that takes every frame and remembers its offset."""

    connection_id = "recorder"

    def __init__(self) -> None:
        self.offsets: list[int] = []

    def deliver(self, channel: str, frame) -> bool:
        self.offsets.append(frame.offset)
        return True


@pytest.fixture
def room_stream(monkeypatch):
    """A hub following room:1 from offset 0 with one recording connection; fills are recorded, not run."""
    hub = Hub()
    channel = channel_names.room(1)
    cursor = StreamCursor(str(channel), channel)
    cursor.epoch = "E"
    cursor.ready.set()
    recorder = Recorder()
    cursor.members.add(recorder)  # type: ignore[arg-type]
    hub.cursors[cursor.name] = cursor
    fills: list[int] = []
    monkeypatch.setattr(hub, "_fill", lambda c: fills.append(c.offset))
    return hub, cursor, recorder, fills


def message(offset: int, epoch: str = "E") -> dict:
    return event_message("room:1", "message:new", f'{{"offset":{offset}}}', offset, epoch)


async def test_events_arriving_out_of_order_are_delivered_in_order_without_reading_the_log(room_stream):
    hub, cursor, recorder, fills = room_stream

    for offset in (1, 3, 4, 2, 5):
        hub._dispatch(message(offset))

    assert recorder.offsets == [1, 2, 3, 4, 5]
    assert (cursor.offset, cursor.backlog, cursor.gap_timer, fills) == (5, [], None, [])


async def test_a_gap_that_does_not_close_within_the_grace_is_filled_from_the_log(room_stream):
    hub, cursor, recorder, fills = room_stream
    hub._dispatch(message(1))
    hub._dispatch(message(3))

    assert (recorder.offsets, fills) == ([1], [])
    assert cursor.gap_timer is not None and cursor.gap_timer.when() > 0
    cursor.gap_timer.cancel()  # what the timer runs, now instead of in REORDER_GRACE_SECONDS
    hub._gap_expired(cursor)

    assert fills == [1]  # the log is read from offset 1 on; message 3 waits in the backlog for it
    assert [m["offset"] for m in cursor.backlog] == [3]

