"""Per-connection limits: subscriptions per connection and client frames per second.

(Frame size is in test_realtime_protocol.py, connections per user in test_realtime_handshake.py.)
The token bucket itself, `realtime.limits.FrameRateLimiter`, is tested with a fake clock.
"""
from dataclasses import dataclass

import pytest

from realtime import limits
from realtime.limits import ABUSE_SECONDS, FrameRateLimiter
from rooms.models import Room
from tests import factories
from tests.realtime_client import FRAME_TIMEOUT, connected, sync
from tests.support import POSITION, error_frame, pong_frame, request_when_allowed
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Setup:
    ada: User
    bob: User
    key: str
    rooms: list[Room]


def _setup() -> Setup:
    ada = factories.make_user("ada")
    bob = factories.make_user("bob")
    rooms = [factories.make_room(bob, f"room {n}") for n in range(3)]
    return Setup(ada=ada, bob=bob, key=factories.make_key(ada), rooms=rooms)


@pytest.fixture
async def s() -> Setup:
    return await sync(_setup)()


async def wait_for_pong(ws) -> None:
    assert await request_when_allowed(ws.request, {"type": "ping", "ref": "wait"}, FRAME_TIMEOUT) == pong_frame("wait")


# --- subscriptions per connection ------------------------------------------------------------


@pytest.fixture
def three_subscriptions(settings):
    settings.RETROCHAT_MAX_SUBSCRIPTIONS = 3


async def test_subscription_over_the_limit_is_refused(s, three_subscriptions):
    async with connected(s.key) as ws:
        for room in s.rooms:
            await ws.subscribe(f"room:{room.pk}")
        reply = await ws.request({"type": "subscribe", "channel": f"user:{s.ada.pk}", "ref": "4th"})
        assert reply == error_frame("SUBSCRIPTION_LIMIT", "4th")
        await ws.assert_alive()


async def test_refused_subscription_is_not_kept(s, three_subscriptions):
    async with connected(s.key) as ws:
        for room in s.rooms:
            await ws.subscribe(f"room:{room.pk}")
        await ws.request({"type": "subscribe", "channel": f"user:{s.ada.pk}"})
        listed = await ws.request({"type": "list_subscriptions"})
        assert [entry["channel"] for entry in listed["subscriptions"]] == [f"room:{room.pk}" for room in s.rooms]


async def test_resubscribing_at_the_limit_is_still_idempotent(s, three_subscriptions):
    async with connected(s.key) as ws:
        for room in s.rooms:
            await ws.subscribe(f"room:{room.pk}")
        channel = f"room:{s.rooms[0].pk}"
        assert await ws.request({"type": "subscribe", "channel": channel}) == {
            "type": "subscribed",
            "channel": channel,
            "event": "*", **POSITION,
        }


async def test_each_filter_counts_as_a_subscription(s, three_subscriptions):
    channel = f"room:{s.rooms[0].pk}"
    async with connected(s.key) as ws:
        for event in ("message:new", "message:updated", "message:deleted"):
            await ws.subscribe(channel, event)
        assert await ws.request({"type": "subscribe", "channel": channel, "event": "room", "ref": "r"}) == error_frame(
            "SUBSCRIPTION_LIMIT", "r"
        )


async def test_unsubscribing_frees_a_place(s, three_subscriptions):
    async with connected(s.key) as ws:
        for room in s.rooms:
            await ws.subscribe(f"room:{room.pk}")
        await ws.request({"type": "unsubscribe", "channel": f"room:{s.rooms[0].pk}"})
        assert await ws.request({"type": "subscribe", "channel": f"user:{s.ada.pk}", "event": "room"}) == {
            "type": "subscribed",
            "channel": f"user:{s.ada.pk}",
            "event": "room", **POSITION,
        }


async def test_subscription_limit_is_per_connection(s, three_subscriptions):
    async with connected(s.key) as first, connected(s.key) as second:
        for room in s.rooms:
            await first.subscribe(f"room:{room.pk}")
        for room in s.rooms:
            await second.subscribe(f"room:{room.pk}")


# --- client frames per second ----------------------------------------------------------------


@pytest.fixture
def five_per_second(settings):
    settings.RETROCHAT_RATE_PER_SECOND = 5
    settings.RETROCHAT_RATE_BURST = 5


async def test_frames_over_the_rate_are_answered_rate_limited_with_their_ref(s, five_per_second):
    async with connected(s.key) as ws:
        for ref in range(10):
            await ws.send({"type": "ping", "ref": ref})
        replies = [await ws.receive() for _ in range(10)]
        assert replies == [pong_frame(ref) for ref in range(5)] + [error_frame("RATE_LIMITED", ref) for ref in range(5, 10)]
        await ws.assert_silent()


async def test_connection_stays_open_and_recovers_after_a_burst(s, five_per_second):
    async with connected(s.key) as ws:
        for ref in range(10):
            await ws.send({"type": "ping", "ref": ref})
        for _ in range(10):
            await ws.receive()
        await wait_for_pong(ws)


async def test_a_dropped_subscribe_subscribes_to_nothing(s, five_per_second):
    channel = f"room:{s.rooms[0].pk}"
    async with connected(s.key) as ws:
        for ref in range(5):
            await ws.send({"type": "ping", "ref": ref})
        await ws.send({"type": "subscribe", "channel": channel, "ref": "dropped"})
        replies = [await ws.receive() for _ in range(6)]
        assert replies[-1] == error_frame("RATE_LIMITED", "dropped")
        assert await request_when_allowed(ws.request, {"type": "list_subscriptions"}, FRAME_TIMEOUT) == {
            "type": "subscriptions",
            "subscriptions": [],
        }


async def test_invalid_frames_count_against_the_rate(s, five_per_second):
    async with connected(s.key) as ws:
        for _ in range(5):
            await ws.send_text("not json")
        for _ in range(5):
            assert await ws.receive() == error_frame("INVALID_JSON")
        await ws.send({"type": "ping", "ref": "late"})
        assert await ws.receive() == error_frame("RATE_LIMITED", "late")


async def test_rate_is_per_connection(s, five_per_second):
    async with connected(s.key) as busy, connected(s.key) as quiet:
        for ref in range(6):
            await busy.send({"type": "ping", "ref": ref})
        assert [await busy.receive() for _ in range(6)][-1] == error_frame("RATE_LIMITED", 5)
        await quiet.assert_alive()


async def test_sustained_abuse_closes_with_4029(s, five_per_second, monkeypatch):
    # The limiter's own tests cover the timing; here any over-rate frame counts as sustained abuse.
    monkeypatch.setattr(limits, "ABUSE_SECONDS", 0)
    async with connected(s.key) as ws:
        for ref in range(6):
            await ws.send({"type": "ping", "ref": ref})
        assert [await ws.receive() for _ in range(6)] == [pong_frame(ref) for ref in range(5)] + [error_frame("RATE_LIMITED")]
        assert await ws.close_code() == 4029


# --- the token bucket ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def allowed(limiter: FrameRateLimiter, frames: int) -> int:
    return sum(limiter.allow() for _ in range(frames))


def test_a_new_bucket_allows_a_full_burst():
    limiter = FrameRateLimiter(5, 8, clock=FakeClock())
    assert allowed(limiter, 8) == 8
    assert not limiter.allow()


def test_the_bucket_refills_at_the_rate():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    allowed(limiter, 5)
    clock.advance(0.19)
    assert not limiter.allow()
    clock.advance(0.01)
    assert limiter.allow()
    assert not limiter.allow()
    clock.advance(0.6)
    assert allowed(limiter, 10) == 3


def test_the_bucket_never_holds_more_than_the_burst():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    clock.advance(3600)
    assert allowed(limiter, 100) == 5


def test_sending_at_the_rate_is_never_limited():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    for _ in range(1000):
        assert limiter.allow()
        clock.advance(0.2)
    assert not limiter.is_abusive()


def send_over_rate(limiter: FrameRateLimiter, clock: FakeClock, seconds: float, per_second: int = 50) -> None:
    for _ in range(round(seconds * per_second)):
        limiter.allow()
        clock.advance(1 / per_second)


def test_a_burst_is_not_abuse():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    assert allowed(limiter, 1000) == 5
    assert not limiter.is_abusive()


def test_over_rate_sending_becomes_abuse_only_after_abuse_seconds():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    allowed(limiter, 5)  # the burst is spent: from here every second is over the rate
    send_over_rate(limiter, clock, ABUSE_SECONDS - 0.1)
    assert not limiter.is_abusive()
    send_over_rate(limiter, clock, 0.2)
    assert limiter.is_abusive()


def test_a_one_second_pause_resets_the_streak():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    allowed(limiter, 5)
    send_over_rate(limiter, clock, ABUSE_SECONDS - 1)
    clock.advance(1.1)  # silence: no frame at all
    send_over_rate(limiter, clock, ABUSE_SECONDS - 1)
    assert not limiter.is_abusive()
    send_over_rate(limiter, clock, 1.2)
    assert limiter.is_abusive()


def test_a_second_without_drops_resets_the_streak():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    allowed(limiter, 5)
    send_over_rate(limiter, clock, ABUSE_SECONDS - 1)
    for _ in range(6):  # a little over a second at the rate: every frame allowed
        clock.advance(0.2)
        assert limiter.allow()
    send_over_rate(limiter, clock, ABUSE_SECONDS - 1)
    assert not limiter.is_abusive()


def test_silence_after_a_drop_is_no_abuse():
    clock = FakeClock()
    limiter = FrameRateLimiter(5, 5, clock=clock)
    allowed(limiter, 6)  # one frame over the rate
    clock.advance(ABUSE_SECONDS)  # then nothing at all
    assert not limiter.is_abusive()
