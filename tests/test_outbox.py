"""The outbox's byte limit counts what goes on the wire (SPEC §3.8), without a server."""
import asyncio

from realtime.outbox import Outbox, wire_size


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
    assert slow == [1]
    outbox.stop()
