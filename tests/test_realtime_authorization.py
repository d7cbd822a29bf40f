"""Who may subscribe to what, checked at every `subscribe`.

The cast: ada owns a public and a private room, bob is a member of both and talks with ada in a
conversation, cy is an outsider and root is staff (not a member of anything).
"""
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from rooms import services as room_services
from rooms.models import Membership, Room
from tests import factories
from tests.worlds import Cast, cast
from tests.realtime_client import connected, sync
from tests.support import POSITION, error_frame, iso, subscribed_frame
from users import services as user_services
from users.models import ApiKey, User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def w() -> Cast:
    return await sync(cast)()


async def subscribe(w: Cast, who: str, channel: str, event: str | None = None) -> dict:
    async with connected(w.key(w.user(who))) as ws:
        frame = {"type": "subscribe", "channel": channel, "ref": "s"}
        if event is not None:
            frame["event"] = event
        return await ws.request(frame)


# --- rooms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["ada", "bob", "cy", "root"], ids=["owner", "member", "outsider", "staff"])
@pytest.mark.parametrize("event", [None, "message", "room", "message:new", "room:deleted"])
async def test_anyone_may_subscribe_to_a_public_room(w, who, event):
    channel = f"room:{w.room.pk}"
    assert await subscribe(w, who, channel, event) == subscribed_frame(channel, event or "*", ref="s")


@pytest.mark.parametrize("who", ["ada", "bob", "root"], ids=["owner", "member", "staff"])
@pytest.mark.parametrize("event", [None, "message", "room", "message:updated"])
async def test_members_and_staff_may_subscribe_to_a_private_room(w, who, event):
    channel = f"room:{w.private.pk}"
    assert await subscribe(w, who, channel, event) == subscribed_frame(channel, event or "*", ref="s")


@pytest.mark.parametrize("event", [None, "*", "message", "room", "message:new", "room:updated"])
async def test_outsider_may_not_subscribe_to_a_private_room(w, event):
    assert await subscribe(w, "cy", f"room:{w.private.pk}", event) == error_frame("FORBIDDEN", "s")


async def test_forbidden_subscription_is_not_kept(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.cy)) as ws:
        assert await ws.request({"type": "subscribe", "channel": channel}) == error_frame("FORBIDDEN")
        assert await ws.request({"type": "list_subscriptions"}) == {"type": "subscriptions", "subscriptions": []}
        await sync(factories.make_message)(w.ada, room=w.private, content="members only")
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_access_is_checked_at_each_subscribe(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.cy)) as ws:
        assert await ws.request({"type": "subscribe", "channel": channel}) == error_frame("FORBIDDEN")
        await sync(room_services.membership_add)(room=w.private, user=w.cy)
        assert await ws.request({"type": "subscribe", "channel": channel}) == {
            "type": "subscribed",
            "channel": channel,
            "event": "*", **POSITION,
        }


@pytest.mark.parametrize("channel", ["room:999999", "conversation:999999", "user:999999"])
async def test_channel_of_something_that_does_not_exist_is_channel_not_found(w, channel):
    assert await subscribe(w, "ada", channel) == error_frame("CHANNEL_NOT_FOUND", "s")


async def test_deleted_room_is_channel_not_found(w):
    room_id = w.room.pk
    await sync(room_services.room_delete)(room=w.room)
    assert await subscribe(w, "root", f"room:{room_id}") == error_frame("CHANNEL_NOT_FOUND", "s")


# --- conversations ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["ada", "bob"])
@pytest.mark.parametrize("event", [None, "message", "message:deleted"])
async def test_both_participants_may_subscribe_to_their_conversation(w, who, event):
    channel = f"conversation:{w.conversation.pk}"
    assert await subscribe(w, who, channel, event) == subscribed_frame(channel, event or "*", ref="s")


@pytest.mark.parametrize("who", ["cy", "root"], ids=["third-user", "staff"])
async def test_nobody_else_may_subscribe_to_a_conversation(w, who):
    assert await subscribe(w, who, f"conversation:{w.conversation.pk}") == error_frame("FORBIDDEN", "s")


# --- user feeds ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "cy", "root"])
async def test_anyone_may_follow_a_users_activity(w, who):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, who, channel, "activity") == subscribed_frame(channel, "activity", presence={"status": "offline", "last_seen_at": None}, ref="s")


@pytest.mark.parametrize("event", ["user:online", "user:offline", "user:updated"])
async def test_anyone_may_follow_one_activity_event_of_a_user(w, event):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, "cy", channel, event) == subscribed_frame(channel, event, presence={"status": "offline", "last_seen_at": None}, ref="s")


@pytest.mark.parametrize("who", ["bob", "cy", "root"])
@pytest.mark.parametrize("event", ["room", "room:created", "room:deleted", "conversation", "conversation:created"])
async def test_only_the_user_may_follow_their_room_and_conversation_feeds(w, who, event):
    assert await subscribe(w, who, f"user:{w.ada.pk}", event) == error_frame("FORBIDDEN", "s")


@pytest.mark.parametrize("event", ["room", "room:created", "room:deleted", "conversation", "conversation:created"])
async def test_a_user_may_follow_their_own_room_and_conversation_feeds(w, event):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, "ada", channel, event) == subscribed_frame(channel, event, ref="s")


async def test_star_on_another_users_feed_is_allowed(w):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, "cy", channel) == subscribed_frame(channel, presence={"status": "offline", "last_seen_at": None}, ref="s")


async def test_star_on_another_users_feed_delivers_activity_only(w):
    channel = f"user:{w.bob.pk}"
    async with connected(w.key(w.cy)) as ws:
        await ws.subscribe(channel, "*")
        room = await sync(factories.make_room)(w.ada, "new")
        await sync(room_services.membership_add)(room=room, user=w.bob)  # room:created on bob's feed
        await sync(user_services.user_update_profile)(user=w.bob, display_name="Robert")
        event = await ws.receive()
        assert (event["type"], event["channel"], event["data"]["display_name"]) == ("user:updated", channel, "Robert")
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_star_on_ones_own_feed_includes_the_room_feed_and_leaves_out_the_conversation_feed(w):
    """`conversation` is opt-in: a client that subscribed with `*` gets what it got before it existed."""
    channel = f"user:{w.bob.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "*")
        await sync(room_services.conversation_get_or_create)(user=w.cy, other=w.bob)
        room = await sync(factories.make_room)(w.ada, "new")
        await sync(room_services.membership_add)(room=room, user=w.bob)
        event = await ws.receive()
        assert (event["type"], event["channel"], event["data"]["id"]) == ("room:created", channel, f"room_{room.pk}")


async def test_the_conversation_feed_announces_a_conversation_someone_else_starts(w):
    channel = f"user:{w.bob.pk}"
    async with connected(w.key(w.bob)) as ws:
        subscribed = await ws.subscribe(channel, "conversation")
        conversation, created = await sync(room_services.conversation_get_or_create)(user=w.cy, other=w.bob)
        assert created
        assert await ws.receive() == {
            "type": "conversation:created", "channel": channel,
            "offset": subscribed["offset"] + 1, "epoch": subscribed["epoch"],
            "data": {
                "id": f"conv_{conversation.pk}",
                "participants": [f"user_{w.bob.pk}", f"user_{w.cy.pk}"],
                "created_at": iso(conversation.created_at),
            },
        }


async def test_own_feed_with_star_shows_oneself_online(w):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, "ada", channel) == subscribed_frame(channel, presence={"status": "online", "last_seen_at": None}, ref="s")


async def test_presence_in_the_reply_shows_an_online_user(w):
    channel = f"user:{w.bob.pk}"
    async with connected(w.key(w.bob)):
        assert await subscribe(w, "cy", channel, "activity") == subscribed_frame(channel, "activity", presence={"status": "online", "last_seen_at": None}, ref="s")


async def test_presence_in_the_reply_carries_last_seen_at(w):
    seen = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    await sync(User.objects.filter(pk=w.bob.pk).update)(last_seen_at=seen)
    channel = f"user:{w.bob.pk}"
    assert await subscribe(w, "cy", channel, "activity") == subscribed_frame(channel, "activity", presence={"status": "offline", "last_seen_at": "2024-01-02T03:04:05.678000Z"}, ref="s")


async def test_room_feed_reply_carries_no_presence(w):
    channel = f"user:{w.ada.pk}"
    assert await subscribe(w, "ada", channel, "room") == subscribed_frame(channel, "room", ref="s")


# --- losing access while subscribed ----------------------------------------------------------


def _remove(room: Room, user: User) -> None:
    room_services.membership_remove(membership=Membership.objects.get(room=room, user=user), reason="removed")


def _remove_then_post(room: Room, user: User, author: User) -> None:
    _remove(room, user)
    factories.make_message(author, room=room, content="now that they are gone")


def access_revoked(channel: str) -> dict:
    return {"type": "unsubscribed", "channel": channel, "reason": "access_revoked"}


def channel_deleted(channel: str) -> dict:
    return {"type": "unsubscribed", "channel": channel, "reason": "channel_deleted"}


async def test_member_removed_from_a_private_room_loses_the_subscription(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "message")
        await sync(_remove)(w.private, w.bob)
        assert await ws.receive() == access_revoked(channel)
        assert await ws.request({"type": "list_subscriptions"}) == {"type": "subscriptions", "subscriptions": []}
        await sync(factories.make_message)(w.ada, room=w.private, content="members only")
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_removed_member_gets_no_event_of_the_private_room_once_removed(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel)
        await sync(_remove_then_post)(w.private, w.bob, w.ada)  # room:updated, then message:new
        assert await ws.receive() == access_revoked(channel)
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_other_members_keep_the_private_room_when_one_is_removed(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.ada)) as ws:
        await ws.subscribe(channel, "message")
        await sync(_remove_then_post)(w.private, w.bob, w.ada)
        event = await ws.receive()
        assert (event["type"], event["data"]["content"]) == ("message:new", "now that they are gone")
        await ws.assert_next_is_sentinel(w.ada, room=w.private)


async def test_staff_removed_from_a_private_room_keep_watching_it(w):
    channel = f"room:{w.private.pk}"
    await sync(room_services.membership_add)(room=w.private, user=w.root)
    async with connected(w.key(w.root)) as ws:
        await ws.subscribe(channel, "message")
        await sync(_remove_then_post)(w.private, w.root, w.ada)
        assert (await ws.receive())["type"] == "message:new"
        await ws.assert_next_is_sentinel(w.ada, room=w.private)


async def test_member_removed_from_a_public_room_keeps_the_subscription(w):
    channel = f"room:{w.room.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "message")
        await sync(_remove_then_post)(w.room, w.bob, w.ada)
        event = await ws.receive()
        assert (event["type"], event["channel"]) == ("message:new", channel)
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


def _make_private_with_the_orm(room_id: int, *, deferred: bool) -> None:
    rooms = Room.objects.only("name") if deferred else Room.objects.all()
    room = rooms.get(pk=room_id)
    room.is_private = True
    room.save()


MAKE_PRIVATE = {
    "service": lambda room: room_services.room_update(room=room, is_private=True),
    "orm": lambda room: _make_private_with_the_orm(room.pk, deferred=False),
    "orm-deferred-field": lambda room: _make_private_with_the_orm(room.pk, deferred=True),
}


@pytest.mark.parametrize("make_private", MAKE_PRIVATE.values(), ids=MAKE_PRIVATE.keys())
async def test_room_made_private_revokes_non_members_watching_it(w, make_private):
    channel = f"room:{w.room.pk}"
    async with connected(w.key(w.cy)) as ws:
        await ws.subscribe(channel)
        await sync(make_private)(w.room)
        assert await ws.receive() == access_revoked(channel)
        await sync(factories.make_message)(w.ada, room=w.room, content="members only now")
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


def _make_private_then_post(room: Room, author: User) -> None:
    room_services.room_update(room=room, is_private=True)
    for n in range(3):
        factories.make_message(author, room=room, content=f"members only now {n}")


@pytest.mark.parametrize("who", ["ada", "bob", "root"], ids=["owner", "member", "staff"])
async def test_room_made_private_keeps_members_and_staff_watching_it_with_every_event_in_order(w, who):
    channel = f"room:{w.room.pk}"
    async with connected(w.key(w.user(who))) as ws:
        await ws.subscribe(channel)
        await sync(_make_private_then_post)(w.room, w.ada)
        event = await ws.receive()
        assert (event["type"], event["data"]["is_private"]) == ("room:updated", True)
        for n in range(3):
            event = await ws.receive()
            assert (event["type"], event["data"]["content"]) == ("message:new", f"members only now {n}")
        await ws.assert_next_is_sentinel(w.ada, room=w.room)


async def test_deleted_room_sends_room_deleted_then_channel_deleted(w):
    channel = f"room:{w.room.pk}"
    room_id = w.room.pk
    await sync(factories.make_message)(w.ada, room=w.room, content="soon gone")
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel)
        await sync(room_services.room_delete)(room=w.room)
        assert await ws.receive() == {
            "type": "room:deleted",
            "channel": channel, **POSITION,
            "data": {"id": f"room_{room_id}", "reason": "deleted"},
        }
        assert await ws.receive() == channel_deleted(channel)
        assert await ws.request({"type": "list_subscriptions"}) == {"type": "subscriptions", "subscriptions": []}
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_deleted_room_without_a_matching_filter_sends_only_channel_deleted(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "message")
        await sync(room_services.room_delete)(room=w.private)
        assert await ws.receive() == channel_deleted(channel)
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


async def test_deleted_conversation_sends_channel_deleted(w):
    channel = f"conversation:{w.conversation.pk}"
    async with connected(w.key(w.ada)) as ws:
        await ws.subscribe(channel)
        await sync(w.conversation.delete)()
        assert await ws.receive() == channel_deleted(channel)
        await ws.assert_next_is_sentinel_elsewhere(w.ada)


# --- losing the credential while connected ---------------------------------------------------


async def assert_closed_unauthorized(ws) -> None:
    assert await ws.receive() == error_frame("UNAUTHORIZED")
    assert await ws.close_code() == 4001


async def test_revoking_the_key_closes_its_connections_with_4001(w):
    async with connected(w.key(w.bob)) as first, connected(w.key(w.bob)) as second:
        key = await sync(ApiKey.objects.get)(user=w.bob)
        await sync(user_services.api_key_revoke)(api_key=key)
        await assert_closed_unauthorized(first)
        await assert_closed_unauthorized(second)


async def test_deleting_the_key_closes_its_connections_with_4001(w):
    async with connected(w.key(w.bob)) as ws:
        await sync(ApiKey.objects.filter(user=w.bob).delete)()
        await assert_closed_unauthorized(ws)


async def test_another_key_of_the_same_user_stays_connected(w):
    second_key = await sync(factories.make_key)(w.bob, "laptop")
    async with connected(w.key(w.bob)) as revoked, connected(second_key) as kept:
        first = await sync(ApiKey.objects.filter(user=w.bob).order_by("id").first)()
        await sync(user_services.api_key_revoke)(api_key=first)
        await assert_closed_unauthorized(revoked)
        await kept.assert_alive()  # it would have been closed in the same pass as the revoked one
        await kept.assert_alive()


async def test_deactivating_the_user_closes_every_connection_with_4001(w):
    second_key = await sync(factories.make_key)(w.bob, "laptop")
    async with connected(w.key(w.bob)) as first, connected(second_key) as second, connected(w.key(w.cy)) as bystander:
        w.bob.is_active = False
        await sync(w.bob.save)()
        await assert_closed_unauthorized(first)
        await assert_closed_unauthorized(second)
        await bystander.assert_alive()  # it would have been closed in the same pass as bob's
        await bystander.assert_alive()


async def test_deleting_the_user_closes_their_connections_with_4001(w):
    async with connected(w.key(w.cy)) as ws:
        await sync(w.cy.delete)()
        await assert_closed_unauthorized(ws)


async def test_a_key_expiring_while_connected_closes_with_4001(w):
    _, key = await sync(user_services.api_key_create)(
        user=w.bob, name="short", expires_at=timezone.now() + timedelta(milliseconds=500)
    )
    async with connected(key) as ws:
        await assert_closed_unauthorized(ws)
