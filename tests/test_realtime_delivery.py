"""Delivery of events to connections.

Exactly the connections holding a matching filter get an event, once each, whatever the overlap of
their filters, and with the very frame the channel layer carries. Changes are made the way any code
makes them (services or the plain ORM, through `database_sync_to_async`), and events go out on commit.
"""
import asyncio

import pytest

from rooms import services as room_services
from rooms.models import Message, Room
from tests import factories
from tests.worlds import Cast, cast
from tests.layer import LayerListener
from tests.realtime_client import FRAME_TIMEOUT, bearer, connected, make_sentinel, opened, sync
from users.models import User
from tests.support import POSITION, iso, message_deleted_frame, message_frame, presence_frame

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def w() -> Cast:
    return await sync(cast)()


# --- who gets what ---------------------------------------------------------------------------


async def test_message_reaches_a_subscriber_with_the_exact_frame(w):
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel)
        message = await sync(factories.make_message)(w.ada, room=w.room, content="hello")
        assert await ws.receive() == await sync(message_frame)(message, **POSITION)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_overlapping_filters_deliver_each_event_once(w):
    async with connected(w.key(w.bob)) as ws:
        for event in ("*", "message", "message:new"):
            await ws.subscribe(w.channel, event)
        message = await sync(factories.make_message)(w.ada, room=w.room)
        assert await ws.receive() == await sync(message_frame)(message, **POSITION)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)
        deleted = message_deleted_frame(message, **POSITION)
        await sync(room_services.message_delete)(message=message)
        assert await ws.receive() == deleted
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_exact_type_filter_delivers_only_that_type(w):
    message = await sync(factories.make_message)(w.ada, room=w.room, content="old")
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel, "message:deleted")
        await sync(factories.make_message)(w.ada, room=w.room, content="new")
        await sync(room_services.message_update)(message=message, content="edited")
        await sync(room_services.room_update)(room=w.room, topic="changed")
        deleted = message_deleted_frame(message, **POSITION)
        await sync(room_services.message_delete)(message=message)
        assert await ws.receive() == deleted
        await ws.assert_next_is_sentinel(w.ada, room=w.room, event="message:deleted")


async def test_category_filter_delivers_only_that_category(w):
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel, "room")
        await sync(factories.make_message)(w.ada, room=w.room)
        await sync(room_services.room_update)(room=w.room, topic="changed")
        event = await ws.receive()
        assert (event["type"], event["channel"], event["data"]["topic"]) == ("room:updated", w.channel, "changed")
        await ws.assert_next_is_sentinel(w.ada, room=w.room, event="room:updated")


async def test_message_category_delivers_new_updated_and_deleted(w):
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel, "message")
        message = await sync(factories.make_message)(w.ada, room=w.room, content="v1")
        assert (await ws.receive())["type"] == "message:new"
        await sync(room_services.message_update)(message=message, content="v2")
        assert await ws.receive() == await sync(message_frame)(message, "message:updated", **POSITION)
        deleted = message_deleted_frame(message, **POSITION)
        await sync(room_services.message_delete)(message=message)
        assert await ws.receive() == deleted
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_exactly_the_matching_connections_get_an_event(w):
    async with (
        connected(w.key(w.ada)) as ada_all,
        connected(w.key(w.ada)) as ada_new,
        connected(w.key(w.bob)) as bob_room_only,
        connected(w.key(w.bob)) as bob_other_room,
        connected(w.key(w.cy)) as cy_unsubscribed,
        connected(w.key(w.cy)) as cy_messages,
    ):
        other = await sync(factories.make_room)(w.bob, "other")
        await ada_all.subscribe(w.channel)
        await ada_new.subscribe(w.channel, "message:new")
        await bob_room_only.subscribe(w.channel, "room")
        await bob_other_room.subscribe(f"room:{other.pk}")
        await cy_messages.subscribe(w.channel, "message")
        message = await sync(factories.make_message)(w.bob, room=w.room)
        expected = await sync(message_frame)(message, **POSITION)
        for ws in (ada_all, ada_new, cy_messages):
            assert await ws.receive() == expected
        # Nothing else reached anyone: each socket's next frames are the sentinels it follows.
        await cy_unsubscribed.subscribe(f"room:{other.pk}")
        posted = await make_sentinel(w.bob, room=w.room)
        updated = await make_sentinel(w.ada, room=w.room, event="room:updated")
        elsewhere = await make_sentinel(w.bob, room=other)
        for ws, sentinels in (
            (ada_all, [posted, updated]), (ada_new, [posted]), (cy_messages, [posted]),
            (bob_room_only, [updated]), (bob_other_room, [elsewhere]), (cy_unsubscribed, [elsewhere]),
        ):
            for sentinel in sentinels:
                await ws.assert_next_is(sentinel)


async def test_a_connection_without_subscriptions_gets_nothing(w):
    async with connected(w.key(w.ada)) as ws:
        await sync(factories.make_message)(w.ada, room=w.room)
        await sync(room_services.room_update)(room=w.room, topic="changed")
        await sync(factories.make_message)(w.ada, conversation=w.conversation)
        await ws.subscribe(w.channel)  # only now, to see the sentinel
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_events_of_other_channels_are_not_delivered(w):
    other = await sync(factories.make_room)(w.ada, "other")
    async with connected(w.key(w.ada)) as ws:
        await ws.subscribe(f"room:{other.pk}")
        await sync(factories.make_message)(w.ada, room=w.room)
        await ws.assert_next_is_sentinel(w.ada, room=other)


async def test_conversation_message_reaches_both_participants(w):
    async with connected(w.key(w.ada)) as ada, connected(w.key(w.bob)) as bob:
        channel = f"conversation:{w.conversation.pk}"
        await ada.subscribe(channel)
        await bob.subscribe(channel, "message:new")
        message = await sync(factories.make_message)(w.bob, conversation=w.conversation, content="psst")
        expected = await sync(message_frame)(message, **POSITION)
        assert expected["data"]["conversation_id"] == f"conv_{w.conversation.pk}"
        assert await ada.receive() == expected
        assert await bob.receive() == expected
        sentinel = await make_sentinel(w.ada, conversation=w.conversation)
        await ada.assert_next_is(sentinel)
        await bob.assert_next_is(sentinel)


async def test_rolled_back_change_delivers_nothing(w):
    def post_and_fail() -> None:
        from django.db import transaction

        with transaction.atomic():
            factories.make_message(w.ada, room=w.room)
            transaction.set_rollback(True)

    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel)
        await sync(post_and_fail)()
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


# --- the frame is the layer's frame ----------------------------------------------------------


def _orm_create(room: Room, author: User) -> Message:
    return Message.objects.create(room=room, author=author, content="plain ORM")


def _orm_edit(message: Message) -> None:
    message.content = "edited by ORM"
    message.save()


async def test_orm_changes_arrive_as_the_frame_the_layer_carries(w):
    async with connected(w.key(w.bob)) as ws, LayerListener(w.channel) as layer:
        await ws.subscribe(w.channel)
        message = await sync(_orm_create)(w.room, w.ada)
        await sync(_orm_edit)(message)
        await sync(message.delete)()
        for expected_type in ("message:new", "message:updated", "message:deleted"):
            carried = await asyncio.wait_for(layer.layer.receive(layer.name), FRAME_TIMEOUT)
            while carried["event"] == "user:online":  # bob's arrival, for the room's activity (not in `*`)
                carried = await asyncio.wait_for(layer.layer.receive(layer.name), FRAME_TIMEOUT)
            assert carried["event"] == expected_type
            assert await ws.receive_text() == carried["text"]  # the published text, byte for byte
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_orm_message_frame_is_the_rest_shape(w):
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(w.channel)
        message = await sync(_orm_create)(w.room, w.ada)
        assert await ws.receive() == await sync(message_frame)(message, **POSITION)


# --- presence --------------------------------------------------------------------------------


async def test_first_connection_of_a_user_announces_user_online(w):
    async with connected(w.key(w.cy)) as watcher:
        await watcher.subscribe(f"user:{w.ada.pk}", "activity")
        async with connected(w.key(w.ada)):
            assert await watcher.receive() == presence_frame(w.ada.pk, "online")
            await watcher.assert_silent()  # no sentinel: a second transition would come from ada's connection task


async def test_second_connection_of_a_user_announces_nothing(w):
    async with connected(w.key(w.ada)), connected(w.key(w.cy)) as watcher:
        await watcher.subscribe(f"user:{w.ada.pk}", "activity")
        async with connected(w.key(w.ada)):
            await watcher.assert_silent()  # no sentinel: a transition would be published after `connected`, concurrently
        # Closing it is no transition either. It has finished closing: a sentinel can prove it.
        await watcher.assert_next_is_sentinel_elsewhere(w.bob)


async def test_last_connection_closing_announces_user_offline_and_stores_last_seen_at(w):
    async with connected(w.key(w.cy)) as watcher:
        await watcher.subscribe(f"user:{w.ada.pk}", "activity")
        async with connected(w.key(w.ada)), connected(w.key(w.ada)):
            assert await watcher.receive() == presence_frame(w.ada.pk, "online")
        offline = await watcher.receive()
        assert offline == presence_frame(w.ada.pk, "offline")
        await watcher.assert_next_is_sentinel_elsewhere(w.bob)  # both connections have finished closing
        await sync(w.ada.refresh_from_db)()
        assert w.ada.last_seen_at is not None
        assert iso(w.ada.last_seen_at) == offline["data"]["timestamp"]


async def test_refused_handshake_announces_no_presence(w, settings):
    settings.RETROCHAT_MAX_CONNECTIONS_PER_USER = 1
    async with connected(w.key(w.cy)) as watcher:
        await watcher.subscribe(f"user:{w.ada.pk}", "activity")
        async with opened([bearer("rc_" + "A" * 43)]) as stranger:
            await stranger.open()
        async with connected(w.key(w.ada)):
            assert await watcher.receive() == presence_frame(w.ada.pk, "online")
            async with opened([bearer(w.key(w.ada))]) as over_limit:
                await over_limit.open()
                assert (await over_limit.receive())["code"] == "CONNECTION_LIMIT"
                assert await over_limit.close_code() == 4029
            await watcher.assert_silent()  # no sentinel: the refused handshake may still be running
        assert await watcher.receive() == presence_frame(w.ada.pk, "offline")
        await watcher.assert_next_is_sentinel_elsewhere(w.bob)  # every connection has finished closing

