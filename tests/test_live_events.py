"""Every event type, end to end: a real server process, real HTTP, real WebSockets.

Each change is made the way a client or an operator makes it (REST, the Django admin over HTTP) and
each event is compared whole with what REST answers for the same object.
"""
import asyncio
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest

from tests import factories
from tests.live import Browser, assert_next_is_sentinel_elsewhere, assert_silent, open_ready, recv_json, request_reply, subscribe
from tests.support import POSITION, TIMESTAMP, message_deleted_data, room_updated_data, subscribed_frame

ROOT_PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def world(transactional_db):
    """Committed data: ada owns a public room with bob in it, ada and bob have a DM, cy is a bystander."""
    ada, bob, cy = factories.make_user("ada"), factories.make_user("bob"), factories.make_user("cy")
    root = factories.make_user("root", is_staff=True, is_superuser=True)
    root.set_password(ROOT_PASSWORD)
    root.save()
    room = factories.make_room(ada, "general", members=(bob,))
    for n in range(3):
        factories.make_message(bob, room=room, content=f"old {n}")
    private = factories.make_room(ada, "secret", is_private=True)
    conversation = factories.make_conversation(ada, bob)
    return SimpleNamespace(
        ada=ada, bob=bob, cy=cy, root=root, room=room, private=private, conversation=conversation,
        ada_key=factories.make_key(ada), bob_key=factories.make_key(bob), cy_key=factories.make_key(cy),
        room_channel=f"room:{room.pk}", conversation_channel=f"conversation:{conversation.pk}",
    )


async def test_room_message_new_updated_deleted_over_rest(server, world):
    channel = world.room_channel
    async with AsyncExitStack() as stack:
        ada = await open_ready(stack, server, world.ada_key)
        bob = await open_ready(stack, server, world.bob_key)
        for ws in (ada, bob):
            assert await subscribe(ws, channel, ref="r1") == subscribed_frame(channel, ref="r1")

        status, created = await server.arequest(
            "POST", f"/v1/rooms/{world.room.pk}/messages", world.bob_key, {"content": "  <b>hi</b> & ünïcödé 🎉  "}
        )
        assert status == 201
        assert created["content"] == "<b>hi</b> & ünïcödé 🎉"  # trimmed, never rendered
        for ws in (ada, bob):
            assert await recv_json(ws) == {"type": "message:new", "channel": channel, **POSITION, "data": created}

        status, updated = await server.arequest("PATCH", f"/v1/messages/{created['id']}", world.bob_key, {"content": "edited"})
        assert status == 200
        assert updated["content"] == "edited"
        for ws in (ada, bob):
            assert await recv_json(ws) == {"type": "message:updated", "channel": channel, **POSITION, "data": updated}

        # The room's owner deletes bob's message.
        status, _ = await server.arequest("DELETE", f"/v1/messages/{created['id']}", world.ada_key)
        assert status == 204
        frames = [await recv_json(ws) for ws in (ada, bob)]
        expected = {"type": "message:deleted", "channel": channel, **POSITION, "data": message_deleted_data(created)}
        assert frames == [expected, expected]
        assert frames[0]["data"]["deleted_at"] == frames[1]["data"]["deleted_at"]  # one event, encoded once
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, ada, bob)


async def test_conversation_message_events_over_rest(server, world):
    channel = world.conversation_channel
    conv_id = f"conv_{world.conversation.pk}"
    async with AsyncExitStack() as stack:
        ada = await open_ready(stack, server, world.ada_key)
        bob = await open_ready(stack, server, world.bob_key)
        # Bare and prefixed ids name the same channel; replies name it canonically.
        assert await subscribe(ada, channel, "message", ref="a") == subscribed_frame(channel, "message", ref="a")
        assert await subscribe(bob, f"conversation:{conv_id}", ref="b") == subscribed_frame(channel, ref="b")

        status, created = await server.arequest("POST", f"/v1/conversations/{conv_id}/messages", world.ada_key, {"content": "psst"})
        assert status == 201
        assert created["conversation_id"] == conv_id and "room_id" not in created
        for ws in (ada, bob):
            assert await recv_json(ws) == {"type": "message:new", "channel": channel, **POSITION, "data": created}

        status, updated = await server.arequest("PATCH", f"/v1/messages/{created['id']}", world.ada_key, {"content": "psst!"})
        assert status == 200
        for ws in (ada, bob):
            assert await recv_json(ws) == {"type": "message:updated", "channel": channel, **POSITION, "data": updated}

        status, _ = await server.arequest("DELETE", f"/v1/messages/{created['id']}", world.ada_key)
        assert status == 204
        for ws in (ada, bob):
            assert await recv_json(ws) == {"type": "message:deleted", "channel": channel, **POSITION, "data": message_deleted_data(created)}
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, ada, bob)


async def test_message_edit_and_delete_through_the_admin(server, world):
    channel = world.room_channel
    browser = await asyncio.to_thread(Browser(server).login, "root", ROOT_PASSWORD)
    async with AsyncExitStack() as stack:
        ada = await open_ready(stack, server, world.ada_key)
        await subscribe(ada, channel)
        status, created = await server.arequest("POST", f"/v1/rooms/{world.room.pk}/messages", world.bob_key, {"content": "typo"})
        assert status == 201
        assert await recv_json(ada) == {"type": "message:new", "channel": channel, **POSITION, "data": created}
        pk = int(created["id"].removeprefix("msg_"))

        status, final_path, body = await asyncio.to_thread(
            browser.post,
            f"/admin/rooms/message/{pk}/change/",
            {"author": world.bob.pk, "room": world.room.pk, "conversation": "", "content": "fixed by an operator", "_save": "Save"},
        )
        assert (status, final_path) == (200, "/admin/rooms/message/"), body[:3000]
        frame = await recv_json(ada)
        status, rest_view = await server.arequest("GET", f"/v1/messages/{created['id']}", world.ada_key)
        assert status == 200 and rest_view["content"] == "fixed by an operator"
        assert frame == {"type": "message:updated", "channel": channel, **POSITION, "data": rest_view}
        assert rest_view.keys() == created.keys()  # the same shape as an edit over REST

        status, final_path, body = await asyncio.to_thread(browser.post, f"/admin/rooms/message/{pk}/delete/", {"post": "yes"})
        assert (status, final_path) == (200, "/admin/rooms/message/"), body[:3000]
        assert await recv_json(ada) == {"type": "message:deleted", "channel": channel, **POSITION, "data": message_deleted_data(created)}
        assert (await server.arequest("GET", f"/v1/messages/{created['id']}", world.ada_key))[0] == 404
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, ada)


async def test_room_updated_on_patch(server, world):
    channel = world.room_channel
    async with AsyncExitStack() as stack:
        ada = await open_ready(stack, server, world.ada_key)
        bob = await open_ready(stack, server, world.bob_key)
        cy = await open_ready(stack, server, world.cy_key)  # not a member: the room is public
        await subscribe(ada, channel)
        await subscribe(bob, channel, "room")
        await subscribe(cy, channel, "room:updated")

        status, body = await server.arequest("PATCH", f"/v1/rooms/{world.room.pk}", world.ada_key, {"topic": "Retro computing", "name": "retro"})
        assert status == 200
        assert (body["topic"], body["name"], body["member_count"]) == ("Retro computing", "retro", 2)
        for ws in (ada, bob, cy):
            assert await recv_json(ws) == {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(body)}
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, ada, bob, cy)


async def test_room_deleted_once_then_unsubscribed(server, world):
    channel = world.room_channel  # the room has messages: deleting it must not announce each of them
    async with AsyncExitStack() as stack:
        ada = await open_ready(stack, server, world.ada_key)
        cy = await open_ready(stack, server, world.cy_key)
        bob_feed = await open_ready(stack, server, world.bob_key)
        await subscribe(ada, channel)
        await subscribe(cy, channel, "message")  # a filter that does not match room:deleted
        assert await subscribe(bob_feed, f"user:{world.bob.pk}", "room") == subscribed_frame(f"user:{world.bob.pk}", "room", ref="s")

        status, _ = await server.arequest("DELETE", f"/v1/rooms/{world.room.pk}", world.ada_key)
        assert status == 204
        room_id = f"room_{world.room.pk}"
        assert await recv_json(ada) == {"type": "room:deleted", "channel": channel, **POSITION, "data": {"id": room_id, "reason": "deleted"}}
        assert await recv_json(ada) == {"type": "unsubscribed", "channel": channel, "reason": "channel_deleted"}
        assert await recv_json(cy) == {"type": "unsubscribed", "channel": channel, "reason": "channel_deleted"}
        assert await recv_json(bob_feed) == {
            "type": "room:deleted", "channel": f"user:{world.bob.pk}", **POSITION, "data": {"id": room_id, "reason": "deleted"}
        }
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, ada, cy, bob_feed)
        assert await request_reply(ada, {"type": "list_subscriptions", "ref": "l"}) == {"type": "subscriptions", "subscriptions": [], "ref": "l"}


async def test_room_created_and_deleted_on_the_users_own_feed(server, world):
    cy_feed_channel = f"user:{world.cy.pk}"
    room_channel = world.room_channel
    async with AsyncExitStack() as stack:
        cy_feed = await open_ready(stack, server, world.cy_key)
        ada = await open_ready(stack, server, world.ada_key)
        assert await subscribe(cy_feed, cy_feed_channel, "room") == subscribed_frame(cy_feed_channel, "room", ref="s")
        await subscribe(ada, room_channel, "room")

        # cy joins the public room herself.
        status, _ = await server.arequest("POST", f"/v1/rooms/{world.room.pk}/members", world.cy_key, {})
        assert status == 201
        status, room_view = await server.arequest("GET", f"/v1/rooms/{world.room.pk}", world.cy_key)
        assert room_view["member_count"] == 3
        assert await recv_json(cy_feed) == {"type": "room:created", "channel": cy_feed_channel, **POSITION, "data": room_view}
        assert await recv_json(ada) == {"type": "room:updated", "channel": room_channel, **POSITION, "data": room_updated_data(room_view)}

        # ...and leaves it.
        status, _ = await server.arequest("DELETE", f"/v1/rooms/{world.room.pk}/members/user_{world.cy.pk}", world.cy_key)
        assert status == 204
        room_id = f"room_{world.room.pk}"
        assert await recv_json(cy_feed) == {"type": "room:deleted", "channel": cy_feed_channel, **POSITION, "data": {"id": room_id, "reason": "left"}}
        status, room_view = await server.arequest("GET", f"/v1/rooms/{world.room.pk}", world.ada_key)
        assert room_view["member_count"] == 2
        assert await recv_json(ada) == {"type": "room:updated", "channel": room_channel, **POSITION, "data": room_updated_data(room_view)}

        # A room cy creates appears in her list too.
        status, new_room = await server.arequest("POST", "/v1/rooms", world.cy_key, {"name": "cy's den", "is_private": True})
        assert status == 201
        assert await recv_json(cy_feed) == {"type": "room:created", "channel": cy_feed_channel, **POSITION, "data": new_room}

        # The owner of a private room adds her, then removes her.
        private = world.private
        status, _ = await server.arequest("POST", f"/v1/rooms/{private.pk}/members", world.ada_key, {"user_id": f"user_{world.cy.pk}"})
        assert status == 201
        status, private_view = await server.arequest("GET", f"/v1/rooms/{private.pk}", world.cy_key)
        assert status == 200
        assert await recv_json(cy_feed) == {"type": "room:created", "channel": cy_feed_channel, **POSITION, "data": private_view}
        status, _ = await server.arequest("DELETE", f"/v1/rooms/{private.pk}/members/{world.cy.pk}", world.ada_key)
        assert status == 204
        assert await recv_json(cy_feed) == {
            "type": "room:deleted", "channel": cy_feed_channel, **POSITION, "data": {"id": f"room_{private.pk}", "reason": "removed"}
        }
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, cy_feed, ada)


async def test_user_updated_reaches_subscribers_of_the_user(server, world):
    channel = f"user:{world.bob.pk}"
    async with AsyncExitStack() as stack:
        cy = await open_ready(stack, server, world.cy_key)
        assert await subscribe(cy, channel, "activity") == {
            "type": "subscribed", "channel": channel, "event": "activity", **POSITION, "ref": "s",
            "presence": {"status": "offline", "last_seen_at": None},
        }
        status, body = await server.arequest(
            "PATCH", "/v1/users/me", world.bob_key, {"display_name": "Bobby Tables", "avatar_url": "https://example.com/b.png"}
        )
        assert status == 200
        assert (body["display_name"], body["avatar_url"]) == ("Bobby Tables", "https://example.com/b.png")
        profile = dict(body)
        expected_data = {"user_id": profile.pop("id"), "status": profile.pop("status"), "timestamp": TIMESTAMP, **profile}
        assert expected_data["user_id"] == f"user_{world.bob.pk}"
        assert await recv_json(cy) == {"type": "user:updated", "channel": channel, **POSITION, "data": expected_data}

        # Saving the same profile again is not a change.
        status, _ = await server.arequest("PATCH", "/v1/users/me", world.bob_key, {"display_name": "Bobby Tables"})
        assert status == 200
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, cy)


async def test_online_on_first_socket_offline_after_last(server, world):
    channel = f"user:{world.bob.pk}"
    bob_id = f"user_{world.bob.pk}"
    async with AsyncExitStack() as stack:
        cy = await open_ready(stack, server, world.cy_key)
        assert await subscribe(cy, channel, "activity") == {
            "type": "subscribed", "channel": channel, "event": "activity", **POSITION, "ref": "s",
            "presence": {"status": "offline", "last_seen_at": None},
        }
        async with server.connect(world.bob_key) as first:
            await recv_json(first)
            assert await recv_json(cy) == {"type": "user:online", "channel": channel, "data": {"user_id": bob_id, "status": "online", "timestamp": TIMESTAMP}}
            async with server.connect(world.bob_key) as second:  # a second tab: no transition
                await recv_json(second)
                await assert_silent(cy, 0.5)
                status, profile = await server.arequest("GET", f"/v1/users/{bob_id}", world.cy_key)
                assert profile["status"] == "online"
                # A subscriber arriving now is told the current presence.
                watcher = await open_ready(stack, server, world.ada_key)
                assert await subscribe(watcher, channel, "user:offline") == {
                    "type": "subscribed", "channel": channel, "event": "user:offline", **POSITION, "ref": "s",
                    "presence": {"status": "online", "last_seen_at": None},
                }
            await assert_silent(cy, 0.5)  # one tab closed, one still open
        offline = await recv_json(cy)
        assert offline == {"type": "user:offline", "channel": channel, "data": {"user_id": bob_id, "status": "offline", "timestamp": TIMESTAMP}}
        assert await recv_json(watcher) == offline
        status, profile = await server.arequest("GET", f"/v1/users/{bob_id}", world.cy_key)
        assert status == 200
        assert (profile["status"], profile["last_seen_at"]) == ("offline", offline["data"]["timestamp"])
        await assert_silent(cy)


async def test_filters_select_what_a_socket_receives(server, world):
    channel = world.room_channel
    async with AsyncExitStack() as stack:
        deletions = await open_ready(stack, server, world.ada_key)
        everything = await open_ready(stack, server, world.ada_key)
        room_only = await open_ready(stack, server, world.cy_key)
        overlapping = await open_ready(stack, server, world.cy_key)
        assert await subscribe(deletions, channel, "message:deleted") == subscribed_frame(channel, "message:deleted", ref="s")
        await subscribe(everything, channel)
        await subscribe(room_only, channel, "room")
        for n, event in enumerate(["message", "*", "message:new", "message"]):  # one frame per event, whatever overlaps
            assert await subscribe(overlapping, channel, event, ref=str(n)) == subscribed_frame(channel, event, ref=str(n))

        status, created = await server.arequest("POST", f"/v1/rooms/{world.room.pk}/messages", world.bob_key, {"content": "one"})
        status, updated = await server.arequest("PATCH", f"/v1/messages/{created['id']}", world.bob_key, {"content": "two"})
        status, _ = await server.arequest("DELETE", f"/v1/messages/{created['id']}", world.bob_key)
        status, room_view = await server.arequest("PATCH", f"/v1/rooms/{world.room.pk}", world.ada_key, {"topic": "filters"})
        assert status == 200
        all_events = [
            {"type": "message:new", "channel": channel, **POSITION, "data": created},
            {"type": "message:updated", "channel": channel, **POSITION, "data": updated},
            {"type": "message:deleted", "channel": channel, **POSITION, "data": message_deleted_data(created)},
            {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(room_view)},
        ]
        assert [await recv_json(everything) for _ in all_events] == all_events
        assert [await recv_json(overlapping) for _ in all_events] == all_events
        assert await recv_json(deletions) == all_events[2]
        assert await recv_json(room_only) == all_events[3]
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, deletions, everything, room_only, overlapping)

        # Dropping one filter keeps the others; dropping the channel stops delivery.
        assert await request_reply(overlapping, {"type": "unsubscribe", "channel": channel, "event": "*", "ref": "u"}) == {
            "type": "unsubscribed", "channel": channel, "event": "*", "ref": "u"
        }
        assert await request_reply(overlapping, {"type": "list_subscriptions", "ref": "l"}) == {
            "type": "subscriptions", "subscriptions": [{"channel": channel, "events": ["message", "message:new"]}], "ref": "l"
        }
        status, second = await server.arequest("POST", f"/v1/rooms/{world.room.pk}/messages", world.bob_key, {"content": "three"})
        assert await recv_json(overlapping) == {"type": "message:new", "channel": channel, **POSITION, "data": second}
        status, quiet = await server.arequest("PATCH", f"/v1/rooms/{world.room.pk}", world.ada_key, {"topic": "quiet"})
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, overlapping)
        assert await request_reply(overlapping, {"type": "unsubscribe", "channel": channel, "ref": "u2"}) == {
            "type": "unsubscribed", "channel": channel, "ref": "u2"
        }
        status, fourth = await server.arequest("POST", f"/v1/rooms/{world.room.pk}/messages", world.bob_key, {"content": "four"})
        assert [await recv_json(everything) for _ in range(3)] == [
            {"type": "message:new", "channel": channel, **POSITION, "data": second},
            {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(quiet)},
            {"type": "message:new", "channel": channel, **POSITION, "data": fourth},
        ]
        await assert_next_is_sentinel_elsewhere(server, world.ada_key, overlapping)
