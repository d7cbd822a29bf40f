"""A connection's outgoing queue (realtime/outbox.py): nothing waits for a slow peer, and a slow peer
is closed with 4008 instead of growing server memory. The peer here is a `send` that blocks until
the test lets it write, and a transport whose buffer the test sets: the live tests
(test_live_slow_consumers.py) drive the same code with real sockets under both servers."""
import asyncio
import time
from typing import Any

import pytest

from realtime.outbox import HARD_LIMIT_FACTOR, HIGH_WATER, PROGRESS_GRACE, Outbox, wire_size


class Peer:
    """A client at the far end: `reading` decides whether writes go through."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.buffered = 0
        self.is_closing = False
        self.aborted = False
        self.takes_frames = False  # whether write_frame succeeds (a socket with room)
        self.frames: list[bytes] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.reading.wait()
        self.written.append(message)

    def buffered_bytes(self) -> int:
        return self.buffered

    def closing(self) -> bool:
        return self.is_closing

    def abort(self) -> None:
        self.aborted = True

    def write_frame(self, frame: bytes) -> bool:
        if self.takes_frames:
            self.frames.append(frame)
        return self.takes_frames


def make_outbox(peer: Peer, *, max_bytes: int = 100, max_seconds: float = 30.0, grace: float = 0.05) -> tuple[Outbox, list[str]]:
    slow: list[str] = []
    outbox: Outbox

    def on_slow() -> None:
        slow.append("slow")
        outbox.close(4008, "SLOW")

    outbox = Outbox(peer.send, transport=peer, max_bytes=max_bytes, max_seconds=max_seconds, close_grace=grace, on_slow=on_slow)
    return outbox, slow


async def settle(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def texts(peer: Peer) -> list[Any]:
    return [m.get("text", m.get("code")) for m in peer.written]


async def test_frames_are_written_in_order():
    peer = Peer()
    outbox, _ = make_outbox(peer)
    for text in ("a", "b", "c"):
        outbox.push(text)
    await settle(lambda: len(peer.written) == 3)
    assert texts(peer) == ["a", "b", "c"] and outbox.pending_bytes == 0


async def test_push_never_waits_for_a_peer_that_does_not_read():
    peer = Peer()
    peer.reading.clear()
    outbox, slow = make_outbox(peer)
    outbox.push("x" * 40)
    outbox.push("y" * 40)  # returns at once although nothing can be written
    assert outbox.pending_bytes == 80 and slow == []


async def test_over_the_byte_limit_the_queue_is_dropped_for_the_error_and_close():
    peer = Peer()
    peer.reading.clear()
    outbox, slow = make_outbox(peer, max_bytes=100)
    outbox.push("z" * 40)
    await asyncio.sleep(0)  # the writer starts, and waits on the peer with the first frame
    outbox.push("z" * 40)
    outbox.push("z" * 40)
    assert slow == []  # over the limit, but only just: the peer gets a moment to make progress
    outbox.check_age(time.monotonic() + PROGRESS_GRACE + 0.1)  # it made none
    assert slow == ["slow"]
    peer.reading.set()
    await settle(lambda: peer.written and peer.written[-1]["type"] == "websocket.close")
    # The frame being written when the limit was crossed goes out; the rest is replaced.
    assert texts(peer) == ["z" * 40, "SLOW", 4008]


async def test_a_frame_older_than_the_limit_makes_a_slow_consumer():
    peer = Peer()
    peer.reading.clear()
    outbox, slow = make_outbox(peer, max_seconds=0.01)
    outbox.push("old")
    outbox.check_age(asyncio.get_running_loop().time() + 1)  # monotonic time, well past the limit
    assert slow == ["slow"]


async def test_a_close_that_cannot_be_written_aborts_the_transport():
    peer = Peer()
    peer.reading.clear()
    outbox, _ = make_outbox(peer, grace=0.01)
    outbox.close(4001, "bye")
    await settle(lambda: peer.aborted)


async def test_a_close_that_was_written_and_flushed_aborts_nothing():
    peer = Peer()
    outbox, _ = make_outbox(peer, grace=0.01)
    outbox.close(4001, "bye")
    await settle(lambda: len(peer.written) == 2)
    outbox._abort_if_stuck()  # what the grace timer runs
    assert texts(peer) == ["bye", 4001] and not peer.aborted


async def test_nothing_is_accepted_after_the_close():
    peer = Peer()
    outbox, _ = make_outbox(peer)
    outbox.close(1000)
    outbox.push("late")
    assert outbox.pending_bytes == 0  # refused, not queued
    await settle(lambda: peer.written)
    assert texts(peer) == [1000]


async def test_a_send_that_raises_drops_the_queue_and_stops():
    peer = Peer()

    async def broken(message: dict[str, Any]) -> None:
        raise ConnectionResetError

    outbox = Outbox(broken, transport=peer, max_bytes=100, max_seconds=30, close_grace=1, on_slow=lambda: None)
    outbox.push("a")
    outbox.push("b")
    await settle(lambda: outbox.dead)
    outbox.push("c")
    assert outbox.pending_bytes == 0


async def test_a_transport_stuck_closing_with_unsent_bytes_is_aborted():
    peer = Peer()
    peer.is_closing, peer.buffered = True, 10
    outbox, _ = make_outbox(peer, grace=0.5)
    outbox.check_age(100.0)
    assert not peer.aborted
    outbox.check_age(101.0)
    assert peer.aborted


@pytest.mark.parametrize("buffered", [0, 10])
async def test_stopping_aborts_only_a_transport_with_bytes_left(buffered):
    peer = Peer()
    peer.buffered = buffered
    outbox, _ = make_outbox(peer, grace=0.01)
    outbox.stop()
    outbox._abort_if_stuck()  # what the grace timer runs
    assert peer.aborted is bool(buffered)


async def test_daphne_style_transport_buffer_holds_frames_in_the_queue():
    peer = Peer()
    peer.buffered = 10 * 1024 * 1024  # the server's own buffer is full: the writer waits
    outbox, slow = make_outbox(peer, max_bytes=1000)
    outbox.push("a")
    await settle(lambda: len(peer.written) == 1)
    outbox.push("b")
    for _ in range(10):  # the writer gets its turns on the loop, and keeps waiting for the buffer
        await asyncio.sleep(0)
    assert texts(peer) == ["a"] and outbox.pending_bytes == 1
    peer.buffered = 0
    await settle(lambda: len(peer.written) == 2)


async def never_written(message: dict) -> None:
    await asyncio.Event().wait()  # a peer that never reads: the first send never returns


def test_wire_size_counts_utf8_bytes():
    assert wire_size('{"a":"x"}') == 9
    assert wire_size("\U0001f600" * 4000) == 16000
    assert wire_size("€") == 3


async def test_non_ascii_frames_reach_the_byte_limit_in_bytes():
    slow = []
    outbox = Outbox(never_written, transport=None, max_bytes=20_000, max_seconds=30, close_grace=5, on_slow=lambda: slow.append(1))
    outbox.push("\U0001f600" * 4000)  # 4,000 characters, 16,000 bytes
    assert (outbox.pending_bytes, slow) == (16_000, [])
    outbox.push("\U0001f600" * 4000)
    outbox.check_age(time.monotonic() + PROGRESS_GRACE + 0.1)
    assert slow == [1]
    outbox.stop()


async def test_preframed_events_of_one_pass_go_straight_to_a_socket_with_room_in_one_write():
    peer = Peer()
    peer.takes_frames = True
    outbox, _ = make_outbox(peer)
    outbox.push("one", b"ONE")
    outbox.push("two", b"TWO")
    assert peer.frames == []  # gathered until the event loop's pass ends
    await asyncio.sleep(0)
    assert peer.frames == [b"ONETWO"] and outbox.pending_bytes == 0 and peer.written == []
    outbox.push("three", b"THREE")
    await asyncio.sleep(0)
    assert peer.frames == [b"ONETWO", b"THREE"]


async def test_gathered_frames_the_socket_does_not_take_are_queued_ahead_of_later_frames():
    peer = Peer()
    peer.reading.clear()
    outbox, _ = make_outbox(peer)
    outbox.push("one", b"ONE")
    outbox.push("two", b"TWO")
    outbox.push("error")  # no wire form: queued behind them
    await asyncio.sleep(0)
    assert outbox.pending_bytes == len("onetwoerror")
    peer.reading.set()
    await settle(lambda: len(peer.written) == 3)
    assert texts(peer) == ["one", "two", "error"] and peer.frames == []


async def test_gathering_more_than_the_high_water_mark_writes_at_once():
    peer = Peer()
    peer.takes_frames = True
    outbox, _ = make_outbox(peer)
    big = b"x" * (HIGH_WATER // 2 + 1)
    outbox.push("a", big)
    outbox.push("b", big)  # bytes no limit counts are bounded: written now, not at the end of the pass
    assert peer.frames == [big + big]


async def test_a_stopped_outbox_writes_nothing_it_had_gathered():
    peer = Peer()
    peer.takes_frames = True
    outbox, _ = make_outbox(peer)
    outbox.push("event", b"FRAME")
    outbox.stop()
    await asyncio.sleep(0)
    assert peer.frames == [] and peer.written == []


async def test_a_preframed_event_is_queued_when_the_socket_has_no_room():
    peer = Peer()
    outbox, _ = make_outbox(peer)
    outbox.push("event", b"FRAME")
    await settle(lambda: peer.written)
    assert texts(peer) == ["event"] and peer.frames == []


async def test_a_preframed_event_never_overtakes_a_queued_frame():
    peer = Peer()
    peer.reading.clear()
    outbox, _ = make_outbox(peer)
    outbox.push("subscribed")  # queued: control frames go through the server's send
    peer.takes_frames = True
    outbox.push("event", b"FRAME")
    peer.reading.set()
    await settle(lambda: len(peer.written) == 2)
    assert texts(peer) == ["subscribed", "event"] and peer.frames == []


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_the_shared_frame_is_the_frame_websockets_would_send(size):
    from websockets.frames import Frame, Opcode

    from realtime.transport import websocket_text_frame

    payload = b"x" * size
    assert websocket_text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


async def test_a_burst_over_the_limit_to_a_peer_that_reads_is_not_a_slow_consumer():
    peer = Peer()
    outbox, slow = make_outbox(peer, max_bytes=100)
    for _ in range(5):  # 200 bytes at once: a replay, or a gap filled from the log
        outbox.push("r" * 40)
    await settle(lambda: len(peer.written) == 5)
    outbox.check_age(time.monotonic() + PROGRESS_GRACE + 0.1)
    assert slow == [] and outbox.pending_bytes == 0


async def test_far_over_the_limit_is_a_slow_consumer_at_once():
    peer = Peer()
    peer.reading.clear()
    outbox, slow = make_outbox(peer, max_bytes=100)
    for _ in range(HARD_LIMIT_FACTOR * 100 // 40 + 1):
        outbox.push("h" * 40)
    assert slow == ["slow"]
