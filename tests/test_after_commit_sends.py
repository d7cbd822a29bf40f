"""After-commit sends: a thread that runs on behalf of a server (an HTTP request on a pool thread)
hands its sends to the server's event loop and goes on without waiting for the channel layer; the
loop sends them one at a time in the order they were handed over. A thread with no server loop
behind it (a management command, a script) sends and waits."""
import asyncio
import logging
import threading

from asgiref.sync import SyncToAsync

from realtime import publish
from retrochat import metrics


class RecordingLayer:
    """A channel layer whose sends finish only when the test lets them (`gate`)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.gate = asyncio.Event()
        self.sent: list[tuple[str, str]] = []
        self.fail_on = fail_on

    async def group_send(self, group: str, message: dict) -> None:
        await self.gate.wait()
        if group == self.fail_on:
            raise ConnectionError("Redis is away")
        self.sent.append((group, message["text"]))


def send_three() -> str:
    for n in (1, 2, 3):
        publish._send(f"rc.room.{n}", {"type": "rc.event", "text": f"frame {n}"})
    return threading.current_thread().name


def on_a_server_thread(function):
    """`function` on a worker thread the way the HTTP handler runs a request (SyncToAsync, not thread-sensitive)."""
    return SyncToAsync(function, thread_sensitive=False)()


async def test_a_server_thread_hands_its_sends_over_without_waiting_and_they_go_in_order(monkeypatch):
    layer = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)

    thread = await asyncio.wait_for(on_a_server_thread(send_three), 5)  # returned with every send still blocked

    assert thread != threading.current_thread().name and layer.sent == []
    layer.gate.set()
    for _ in range(50):
        if len(layer.sent) == 3:
            break
        await asyncio.sleep(0.01)
    assert layer.sent == [("rc.room.1", "frame 1"), ("rc.room.2", "frame 2"), ("rc.room.3", "frame 3")]


async def test_a_failed_send_is_counted_and_logged_and_the_next_ones_still_go(monkeypatch, caplog):
    layer = RecordingLayer(fail_on="rc.room.2")
    layer.gate.set()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    errors = metrics._COUNTERS["retrochat_channel_layer_errors_total"].labels(operation="send")
    before = errors._value.get()

    with caplog.at_level(logging.ERROR, logger="retrochat.realtime"):
        await on_a_server_thread(send_three)
        for _ in range(50):
            if len(layer.sent) == 2:
                break
            await asyncio.sleep(0.01)

    assert layer.sent == [("rc.room.1", "frame 1"), ("rc.room.3", "frame 3")]
    assert errors._value.get() == before + 1
    assert [r.getMessage() for r in caplog.records] == ["After-commit send to rc.room.2 failed; the event log still has it"]


def test_a_thread_with_no_server_loop_sends_and_waits(monkeypatch):
    layer = RecordingLayer()
    layer.gate.set()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)

    worker = threading.Thread(target=send_three)  # like a management command: no event loop anywhere
    worker.start()
    worker.join(5)

    assert layer.sent == [("rc.room.1", "frame 1"), ("rc.room.2", "frame 2"), ("rc.room.3", "frame 3")]


async def test_while_the_layer_hangs_the_sends_waiting_are_bounded_and_the_oldest_are_dropped(monkeypatch, caplog):
    # Redis that takes no sends (a hung connection: each send fails only after its timeout) while
    # the REST writes go on: without a bound the waiting sends grew with every write, each holding
    # its frame. The dropped ones are in the event log, which every hub reads to fill a gap.
    layer = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(publish, "MAX_PENDING_SENDS", 5)
    errors = metrics._COUNTERS["retrochat_channel_layer_errors_total"].labels(operation="send")
    before = errors._value.get()

    def send_twenty() -> None:
        for n in range(20):
            publish._send("rc.room.1", {"type": "rc.event", "text": f"frame {n}"})

    with caplog.at_level(logging.WARNING, logger="retrochat.realtime"):
        await on_a_server_thread(send_twenty)
        sender = publish._sender_for(asyncio.get_running_loop())
        for _ in range(500):  # the hand-overs run on this loop: until the last one is queued
            if any(message["text"] == "frame 19" for _, message in sender.pending):
                break
            await asyncio.sleep(0.01)
        assert len(sender.pending) <= 5
        layer.gate.set()
        for _ in range(50):
            if not sender.pending and not sender.draining:
                break
            await asyncio.sleep(0.01)

    # What got through: perhaps the first (taken by the send in progress), then the newest, in order;
    # every other one was dropped and counted.
    sent = [int(text.removeprefix("frame ")) for _, text in layer.sent]
    assert sent == sorted(sent) and sent[-5:] == [15, 16, 17, 18, 19] and len(sent) <= 6
    assert errors._value.get() == before + 20 - len(sent)
    assert any("dropped" in r.getMessage() for r in caplog.records)
