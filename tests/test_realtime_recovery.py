"""Missed-event recovery with `since`, through the real ASGI application.

Every expectation is an exact frame with an exact position: offsets and epochs are read from what
the first connection received (or from the log), never matched loosely.
"""
from typing import Any

import pytest

from realtime import streams
from realtime.models import Stream, StreamEvent
from rooms import services as room_services
from rooms.models import Membership
from tests import factories
from tests.worlds import Cast, cast
from tests.realtime_client import connected, sync
from tests.support import error_frame, message_deleted_frame, message_frame, subscribed_frame
from users import services as user_services
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def w() -> Cast:
    return await sync(cast)()


def head(channel: str) -> streams.Position:
    return streams.positions([channel])[channel]


def since_frame(channel: str, offset: Any, epoch: Any, *, event: str | None = None, ref: str = "r") -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "since": {"offset": offset, "epoch": epoch}, "ref": ref}
    if event is not None:
        frame["event"] = event
    return frame


async def first_position(w: Cast, user: User | None = None, channel: str | None = None) -> tuple[int, str]:
    """Subscribe once, as a client does before it goes away: the position `subscribed` gives."""
    channel = channel or w.channel
    async with connected(w.key(user or w.bob)) as ws:
        reply = await ws.subscribe(channel)
        position = await sync(head)(channel)
        assert reply == subscribed_frame(channel, offset=position.offset, epoch=position.epoch)
        return reply["offset"], reply["epoch"]


# --- recovery ----------------------------------------------------------------------------------


async def test_a_reconnecting_client_gets_exactly_what_it_missed_in_order_then_live_events(w):
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.subscribe(w.channel)
        start, epoch = reply["offset"], reply["epoch"]
        assert reply == subscribed_frame(w.channel, offset=start, epoch=epoch)
        first = await sync(factories.make_message)(w.ada, room=w.room, content="before")
        seen = await ws.receive()
        assert seen == await sync(message_frame)(first, offset=start + 1, epoch=epoch)
        await ws.assert_next_is_sentinel_elsewhere(w.ada)  # elsewhere: this stream's offsets are counted below

    def while_away() -> list[dict[str, Any]]:
        second = factories.make_message(w.bob, room=w.room, content="second")
        frames = [message_frame(second, offset=start + 2, epoch=epoch)]
        room_services.message_update(message=first, content="before, edited")
        frames.append(message_frame(first, "message:updated", offset=start + 3, epoch=epoch))
        frames.append(message_deleted_frame(second, offset=start + 4, epoch=epoch))
        room_services.message_delete(message=second)
        third = factories.make_message(w.ada, room=w.room, content="third")
        frames.append(message_frame(third, offset=start + 5, epoch=epoch))
        return frames

    missed = await sync(while_away)()
    assert missed[1]["data"]["edited_at"] is not None
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request(since_frame(w.channel, seen["offset"], seen["epoch"]))
        assert reply == subscribed_frame(w.channel, offset=start + 5, epoch=epoch, ref="r", recovered=True)
        assert [await ws.receive() for _ in missed] == missed
        live = await sync(factories.make_message)(w.ada, room=w.room, content="live")
        assert await ws.receive() == await sync(message_frame)(live, offset=start + 6, epoch=epoch)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_since_the_current_head_recovers_nothing_and_carries_on(w):
    offset, epoch = await first_position(w)
    async with connected(w.key(w.bob)) as ws:
        assert await ws.request(since_frame(w.channel, offset, epoch)) == subscribed_frame(w.channel, offset=offset, epoch=epoch, ref="r", recovered=True)
        # The next event, asserted exactly, proves that nothing was replayed before it.
        message = await sync(factories.make_message)(w.ada, room=w.room)
        assert await ws.receive() == await sync(message_frame)(message, offset=offset + 1, epoch=epoch)


async def test_a_stream_without_events_has_offset_0_and_an_epoch_to_recover_from(w):
    channel = f"conversation:{w.conversation.pk}"
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.subscribe(channel)
        epoch = reply["epoch"]
        assert reply == subscribed_frame(channel, offset=0, epoch=epoch)
        assert epoch
    await sync(factories.make_message)(w.ada, conversation=w.conversation, content="psst")
    async with connected(w.key(w.bob)) as ws:
        assert await ws.request(since_frame(channel, 0, epoch)) == subscribed_frame(channel, offset=1, epoch=epoch, ref="r", recovered=True)
        frame = await ws.receive()
        assert (frame["type"], frame["offset"], frame["epoch"], frame["data"]["content"]) == ("message:new", 1, epoch, "psst")
        await ws.assert_next_is_sentinel(w.ada, conversation=w.conversation)


async def test_exactly_the_maximum_number_of_missed_events_is_recovered(w, settings):
    settings.RETROCHAT_RECOVERY_MAX_EVENTS = 3
    offset, epoch = await first_position(w)
    for n in range(3):
        await sync(factories.make_message)(w.ada, room=w.room, content=f"m{n}")
    async with connected(w.key(w.bob)) as ws:
        assert await ws.request(since_frame(w.channel, offset, epoch)) == subscribed_frame(w.channel, offset=offset + 3, epoch=epoch, ref="r", recovered=True)
        replayed = [await ws.receive() for _ in range(3)]
        assert [(f["offset"], f["data"]["content"]) for f in replayed] == [(offset + 1, "m0"), (offset + 2, "m1"), (offset + 3, "m2")]
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


# --- when the server cannot recover ------------------------------------------------------------


def _other_epoch(w: Cast, offset: int, epoch: str, settings: Any) -> dict[str, Any]:
    return {"offset": offset, "epoch": "x" + epoch}


def _pruned(w: Cast, offset: int, epoch: str, settings: Any) -> dict[str, Any]:
    for n in range(3):
        factories.make_message(w.ada, room=w.room, content=f"m{n}")
    assert streams.prune(history_size=1, ttl_seconds=3600) > 0
    return {"offset": offset, "epoch": epoch}


def _too_many_missing(w: Cast, offset: int, epoch: str, settings: Any) -> dict[str, Any]:
    settings.RETROCHAT_RECOVERY_MAX_EVENTS = 2
    for n in range(3):
        factories.make_message(w.ada, room=w.room, content=f"m{n}")
    return {"offset": offset, "epoch": epoch}


def _ahead(w: Cast, offset: int, epoch: str, settings: Any) -> dict[str, Any]:
    factories.make_message(w.ada, room=w.room, content="one")
    return {"offset": offset + 2, "epoch": epoch}


@pytest.mark.parametrize(
    "case", [_other_epoch, _pruned, _too_many_missing, _ahead], ids=["epoch-differs", "pruned", "too-many-missing", "offset-ahead"]
)
async def test_unrecoverable_since_answers_the_current_position_and_replays_nothing(w, settings, case):
    offset, epoch = await first_position(w)
    since = await sync(case)(w, offset, epoch, settings)
    now = await sync(head)(w.channel)
    assert now.epoch == epoch
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request({"type": "subscribe", "channel": w.channel, "since": since, "ref": "r"})
        assert reply == subscribed_frame(w.channel, offset=now.offset, epoch=epoch, ref="r", recovered=False)
        # The client carries on from the position it was given: the next event follows it (and,
        # asserted exactly, proves that nothing was replayed before it).
        message = await sync(factories.make_message)(w.ada, room=w.room, content="next")
        assert await ws.receive() == await sync(message_frame)(message, offset=now.offset + 1, epoch=epoch)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


@pytest.mark.parametrize(
    "since",
    [
        "40",
        40,
        [40, "e"],
        {},
        {"offset": 1},
        {"epoch": "e"},
        {"offset": 1, "epoch": "e", "extra": 1},
        {"offset": -1, "epoch": "e"},
        {"offset": True, "epoch": "e"},
        {"offset": 1.0, "epoch": "e"},
        {"offset": "1", "epoch": "e"},
        {"offset": 1, "epoch": ""},
        {"offset": 1, "epoch": "e" * 33},
        {"offset": 1, "epoch": 5},
        {"offset": 1, "epoch": None},
    ],
    ids=[
        "string", "number", "list", "empty-object", "missing-epoch", "missing-offset", "extra-key", "negative-offset",
        "bool-offset", "float-offset", "string-offset", "empty-epoch", "too-long-epoch", "number-epoch", "null-epoch",
    ],
)
async def test_a_malformed_since_is_invalid_frame_and_subscribes_nothing(w, since):
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request({"type": "subscribe", "channel": w.channel, "since": since, "ref": "bad"})
        assert reply == error_frame("INVALID_FRAME", "bad")
        assert await ws.request({"type": "list_subscriptions", "ref": "l"}) == {"type": "subscriptions", "subscriptions": [], "ref": "l"}
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_since_on_unsubscribe_is_invalid_frame(w):
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel)
        frame = {"type": "unsubscribe", "channel": w.channel, "since": {"offset": 1, "epoch": "e"}, "ref": "u"}
        assert await ws.request(frame) == error_frame("INVALID_FRAME", "u")
        reply = await ws.request({"type": "list_subscriptions", "ref": "l"})
        assert reply == {"type": "subscriptions", "subscriptions": [{"channel": w.channel, "events": ["*"]}], "ref": "l"}


async def test_a_null_since_is_a_plain_subscribe(w):
    position = await sync(head)(w.channel)
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request({"type": "subscribe", "channel": w.channel, "since": None, "ref": "n"})
        assert reply == subscribed_frame(w.channel, offset=position.offset, epoch=position.epoch, ref="n")


# --- filters and rights ------------------------------------------------------------------------


async def test_replay_honours_the_filter(w):
    offset, epoch = await first_position(w)

    def while_away() -> list[dict[str, Any]]:
        one = factories.make_message(w.ada, room=w.room, content="one")  # +1
        two = factories.make_message(w.bob, room=w.room, content="two")  # +2
        deletions = [message_deleted_frame(one, offset=offset + 3, epoch=epoch), message_deleted_frame(two, offset=offset + 6, epoch=epoch)]
        room_services.message_delete(message=one)  # +3
        room_services.message_update(message=two, content="two, edited")  # +4
        room_services.room_update(room=w.room, topic="news")  # +5
        room_services.message_delete(message=two)  # +6
        return deletions

    deletions = await sync(while_away)()
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request(since_frame(w.channel, offset, epoch, event="message:deleted"))
        assert reply == subscribed_frame(w.channel, offset=offset + 6, epoch=epoch, event="message:deleted", ref="r", recovered=True)
        assert [await ws.receive(), await ws.receive()] == deletions
        await ws.assert_next_is_sentinel(w.ada, room=w.room, event="message:deleted")


async def test_a_second_filter_replays_only_what_the_first_did_not_deliver(w):
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.subscribe(w.channel, "message:new")
        offset, epoch = reply["offset"], reply["epoch"]
        message = await sync(factories.make_message)(w.ada, room=w.room, content="one")
        assert await ws.receive() == await sync(message_frame)(message, offset=offset + 1, epoch=epoch)
        deleted = message_deleted_frame(message, offset=offset + 2, epoch=epoch)
        await sync(room_services.message_delete)(message=message)  # offset + 2: not delivered (filter)
        await ws.assert_silent()  # no sentinel: one would shift the offsets this test recovers
        reply = await ws.request(since_frame(w.channel, offset, epoch, event="message"))
        assert reply == subscribed_frame(w.channel, offset=offset + 2, epoch=epoch, event="message", ref="r", recovered=True)
        assert await ws.receive() == deleted
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_a_user_removed_from_a_private_room_recovers_nothing(w):
    channel = f"room:{w.private.pk}"
    offset, epoch = await first_position(w, channel=channel)

    def while_away() -> None:
        factories.make_message(w.ada, room=w.private, content="before the removal")
        membership = Membership.objects.get(room=w.private, user=w.bob)
        room_services.membership_remove(membership=membership, reason="removed")
        factories.make_message(w.ada, room=w.private, content="after the removal")

    await sync(while_away)()
    async with connected(w.key(w.bob)) as ws:
        assert await ws.request(since_frame(channel, offset, epoch)) == error_frame("FORBIDDEN", "r")
        assert await ws.request({"type": "list_subscriptions", "ref": "l"}) == {"type": "subscriptions", "subscriptions": [], "ref": "l"}
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_replay_on_someone_elses_user_channel_gives_their_activity_never_their_room_feed(w):
    channel = f"user:{w.ada.pk}"
    presence = {"status": "offline", "last_seen_at": None}
    async with connected(w.key(w.cy)) as ws:
        reply = await ws.subscribe(channel)
        offset, epoch = reply["offset"], reply["epoch"]
        assert reply == subscribed_frame(channel, offset=offset, epoch=epoch) | {"presence": presence}

    def while_away() -> None:
        factories.make_room(w.ada, "another")  # room:created on ada's own feed: not cy's to see
        user_services.user_update_profile(user=w.ada, display_name="Ada L.")  # user:updated

    await sync(while_away)()
    async with connected(w.key(w.cy)) as ws:
        reply = await ws.request(since_frame(channel, offset, epoch))
        assert reply == subscribed_frame(channel, offset=offset + 2, epoch=epoch, ref="r", recovered=True) | {"presence": presence}
        frame = await ws.receive()
        assert (frame["type"], frame["channel"], frame["offset"], frame["epoch"]) == ("user:updated", channel, offset + 2, epoch)
        assert frame["data"]["display_name"] == "Ada L."
        await ws.assert_next_is_sentinel_elsewhere(w.bob)  # not ada: her new room would be on this feed
    async with connected(w.key(w.ada)) as ws:  # ada herself recovers both
        reply = await ws.request(since_frame(channel, offset, epoch))
        assert reply == subscribed_frame(channel, offset=offset + 2, epoch=epoch, ref="r", recovered=True) | {"presence": {"status": "online", "last_seen_at": None}}
        assert [(f["type"], f["offset"]) for f in [await ws.receive(), await ws.receive()]] == [
            ("room:created", offset + 1), ("user:updated", offset + 2),
        ]
        await ws.assert_next_is_sentinel_elsewhere(w.bob)  # not ada: her new room would be on this feed


def _wipe_the_log() -> None:
    StreamEvent.objects.all().delete()
    Stream.objects.all().delete()


async def test_a_reset_stream_starts_again_at_1_under_a_new_epoch_for_live_and_recovering_clients(w):
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.subscribe(w.channel)
        offset, epoch = reply["offset"], reply["epoch"]
        await sync(_wipe_the_log)()  # as a restored database would be
        message = await sync(factories.make_message)(w.ada, room=w.room, content="after the reset")
        new_epoch = (await sync(head)(w.channel)).epoch
        assert new_epoch != epoch
        assert await ws.receive() == await sync(message_frame)(message, offset=1, epoch=new_epoch)
        await ws.assert_next_is_sentinel_elsewhere(w.ada)  # elsewhere: this stream's head is checked below
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request(since_frame(w.channel, offset, epoch))
        assert reply == subscribed_frame(w.channel, offset=1, epoch=new_epoch, ref="r", recovered=False)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_conversation_created_is_recovered_by_the_conversation_filter_alone_and_by_nobody_else(w):
    channel = f"user:{w.ada.pk}"
    async with connected(w.key(w.ada)) as ws:
        reply = await ws.subscribe(channel)
        offset, epoch = reply["offset"], reply["epoch"]

    def while_away() -> None:
        room_services.conversation_get_or_create(user=w.cy, other=w.ada)  # conversation:created (opt-in)
        factories.make_room(w.ada, "another")  # room:created

    await sync(while_away)()
    def without_presence(reply: dict[str, Any]) -> dict[str, Any]:  # her own: online, last seen just now
        assert reply.get("presence", {"status": "online"})["status"] == "online"
        return {k: v for k, v in reply.items() if k != "presence"}

    async with connected(w.key(w.ada)) as ws:  # `*` leaves the conversation feed out, in replay too
        reply = await ws.request(since_frame(channel, offset, epoch))
        assert without_presence(reply) == subscribed_frame(channel, offset=offset + 2, epoch=epoch, ref="r", recovered=True)
        assert [(f["type"], f["offset"]) for f in [await ws.receive()]] == [("room:created", offset + 2)]
        await ws.assert_next_is_sentinel_elsewhere(w.bob)
        # A second filter on the same channel recovers what `*` did not give.
        reply = await ws.request(since_frame(channel, offset, epoch, event="conversation", ref="c"))
        assert without_presence(reply) == subscribed_frame(channel, offset=offset + 2, epoch=epoch, ref="c", recovered=True, event="conversation")
        assert [(f["type"], f["offset"]) for f in [await ws.receive()]] == [("conversation:created", offset + 1)]
        await ws.assert_next_is_sentinel_elsewhere(w.bob)
    async with connected(w.key(w.ada)) as ws:
        reply = await ws.request(since_frame(channel, offset, epoch, event="conversation:created"))
        assert without_presence(reply) == subscribed_frame(channel, offset=offset + 2, epoch=epoch, ref="r", recovered=True, event="conversation:created")
        assert [(f["type"], f["offset"]) for f in [await ws.receive()]] == [("conversation:created", offset + 1)]
        await ws.assert_next_is_sentinel_elsewhere(w.bob)
    for event in ("conversation", "conversation:created"):
        async with connected(w.key(w.cy)) as ws:  # cy started it, but ada's feed is hers alone
            assert await ws.request(since_frame(channel, offset, epoch, event=event)) == error_frame("FORBIDDEN", "r")
