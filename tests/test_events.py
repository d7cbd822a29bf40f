"""Events as specified: every change emits exactly the events it should, in order, with the exact
frames, whichever way it was made (REST, the Django admin, plain ORM code); nothing is sent for a
rolled-back change; deleting a room sends `room:deleted` and nothing else.

Each test captures at the publish boundary (tests/support.py `capture_events`, as Zulip's
`capture_send_event_calls`): the change runs in the test's transaction, its on-commit callbacks run
when the `capture()` block ends, and the test compares the whole list of published frames with `==`.
Every logged event's offset is checked to follow its stream's previous one under the same epoch.
Expected payloads are built from the database (tests/support.py), not by the code under test. The
delivery of these frames to sockets is tested in test_realtime_delivery.py and end to end in
test_live_events.py.
"""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from realtime.channel_names import parse_channel
from rooms import services as room_services
from rooms.models import Conversation, Membership, Message, Room
from tests import factories
from tests.openapi import SchemaCheckedClient
from tests.support import (
    TIMESTAMP,
    iso,
    message_deleted_frame,
    message_frame,
    room_data,
    room_deleted_frame,
    room_updated_frame,
)
from users.models import User

pytestmark = pytest.mark.django_db


# --- The world every test starts from --------------------------------------------------------


@dataclass
class World:
    ada: User  # owns the room; talks with bob in a conversation
    bob: User  # member of the room
    cy: User  # not a member
    root: User  # superuser, logged in to the admin
    room: Room
    conversation: Conversation
    room_message: Message  # by bob, in the room
    dm: Message  # by ada, in the conversation
    keys: dict[int, str]
    admin: Client

    def key(self, user: User) -> str:
        return self.keys[user.pk]


@pytest.fixture
def world(db) -> World:
    ada = factories.make_user("ada")
    bob = factories.make_user("bob")
    cy = factories.make_user("cy")
    root = factories.make_user("root", is_staff=True, is_superuser=True)
    room = factories.make_room(ada, "general", members=(bob,))
    factories.make_message(ada, room=room, content="welcome")
    room_message = factories.make_message(bob, room=room, content="hi all")
    conversation = factories.make_conversation(ada, bob)
    dm = factories.make_message(ada, conversation=conversation, content="psst")
    factories.make_message(bob, conversation=conversation, content="yes?")
    keys = {user.pk: factories.make_key(user) for user in (ada, bob, cy, root)}
    admin = Client()
    admin.force_login(root)  # before any capture: logging in is no event anyway
    return World(ada, bob, cy, root, room, conversation, room_message, dm, keys, admin)


# --- Making changes ----------------------------------------------------------------------------


def rest(w: World, user: User, method: str, path: str, body: dict | None = None, *, expect: int) -> Any:
    client = SchemaCheckedClient()  # checks every answer against the OpenAPI document
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {w.key(user)}")
    response = getattr(client, method)(path, **({} if body is None else {"data": body, "format": "json"}))
    assert response.status_code == expect, response.content
    return response.json() if response.content else None


def admin_post(w: World, path: str, data: dict[str, Any]) -> None:
    """POST an admin form; a redirect means the admin accepted it (a 200 is a form with errors)."""
    response = w.admin.post(path, data)
    assert response.status_code == 302, response.content.decode()[:3000]


def admin_delete(w: World, model: str, pk: int) -> None:
    admin_post(w, f"/admin/rooms/{model}/{pk}/delete/", {"post": "yes"})


def admin_delete_selected(w: World, model: str, *pks: int) -> None:
    admin_post(w, f"/admin/rooms/{model}/", {"action": "delete_selected", "_selected_action": list(pks), "post": "yes"})


def message_form(message: Message, **changes: Any) -> dict[str, Any]:
    form = {"room": message.room_id or "", "conversation": message.conversation_id or "", "author": message.author_id, "content": message.content}
    return {**form, **changes}


def _room_form(room: Room, *, new_members: tuple[User, ...] = (), delete_members: tuple[User, ...] = (), **changes: Any) -> dict[str, Any]:
    """The room admin's change form, with its membership inline as the admin renders it."""
    form: dict[str, Any] = {"name": room.name, "topic": room.topic, "created_by": room.created_by_id or ""}
    if room.is_private:
        form["is_private"] = "on"
    form.update(changes)
    if not form.get("is_private"):
        form.pop("is_private", None)
    memberships = list(room.memberships.order_by("id"))
    for i, membership in enumerate(memberships):
        form.update({
            f"memberships-{i}-id": membership.pk, f"memberships-{i}-room": room.pk,
            f"memberships-{i}-user": membership.user_id, f"memberships-{i}-role": membership.role,
        })
        if membership.user in delete_members:
            form[f"memberships-{i}-DELETE"] = "on"
    for j, user in enumerate(new_members, start=len(memberships)):
        form.update({f"memberships-{j}-room": room.pk, f"memberships-{j}-user": user.pk, f"memberships-{j}-role": "member"})
    form.update({
        "memberships-TOTAL_FORMS": len(memberships) + len(new_members), "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0, "memberships-MAX_NUM_FORMS": 1000,
    })
    return form


def admin_change_room(w: World, **kwargs: Any) -> None:
    admin_post(w, f"/admin/rooms/room/{w.room.pk}/change/", _room_form(Room.objects.get(pk=w.room.pk), **kwargs))


def _user_form(user: User, **changes: Any) -> dict[str, Any]:
    form = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name, "email": user.email,
        "display_name": user.display_name, "avatar_url": user.avatar_url,
    }
    if user.is_active:
        form["is_active"] = "on"
    return {**form, **changes}


def admin_change_user(w: World, user: User, **changes: Any) -> None:
    admin_post(w, f"/admin/users/user/{user.pk}/change/", _user_form(User.objects.get(pk=user.pk), **changes))


# --- Expected payloads, read back from the database --------------------------------------------


def newest_message() -> Message:
    return Message.objects.order_by("-pk")[0]


def as_member(room: dict[str, Any]) -> dict[str, Any]:
    """The data of room:created on a member's own feed: the room as REST returns it to that member."""
    return {**room, "is_member": True}


def room_created_frame(user: User, room: dict[str, Any]) -> dict[str, Any]:
    return {"type": "room:created", "channel": f"user:{user.pk}", "data": as_member(room)}


def user_updated_frame(user: User, channel: str | None = None) -> dict[str, Any]:
    user.refresh_from_db()
    return {
        "type": "user:updated",
        "channel": channel or f"user:{user.pk}",
        "data": {
            "user_id": f"user_{user.pk}", "status": "offline", "timestamp": TIMESTAMP, "username": user.username,
            "display_name": user.display_name, "avatar_url": user.avatar_url,
            "last_seen_at": iso(user.last_seen_at) if user.last_seen_at else None,
        },
    }


def per_channel(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames grouped by channel, each channel's in publish order. For deletions, whose events come
    in the order of the ORM's cascade: the protocol orders events within a channel, not across."""
    return sorted(frames, key=lambda frame: frame["channel"])


def shape(frame: dict[str, Any]) -> tuple:
    return frame["type"], parse_channel(frame["channel"]).kind, sorted(frame["data"])


# --- message:new / message:updated / message:deleted -------------------------------------------


def _post_in_room(w: World) -> Any:
    return rest(w, w.bob, "post", f"/v1/rooms/{w.room.pk}/messages", {"content": "  new here  "}, expect=201)


def _post_in_conversation(w: World) -> Any:
    return rest(w, w.ada, "post", f"/v1/conversations/conv_{w.conversation.pk}/messages", {"content": "new here"}, expect=201)


NEW_MESSAGE = {
    "room": {
        "rest": _post_in_room,
        "admin": lambda w: admin_post(w, "/admin/rooms/message/add/", {"room": w.room.pk, "conversation": "", "author": w.bob.pk, "content": "new here"}),
        "orm": lambda w: Message.objects.create(room=w.room, author=w.bob, content="new here"),
        "service": lambda w: room_services.message_create(author=w.bob, room=w.room, content="new here"),
    },
    "conversation": {
        "rest": _post_in_conversation,
        "admin": lambda w: admin_post(w, "/admin/rooms/message/add/", {"room": "", "conversation": w.conversation.pk, "author": w.ada.pk, "content": "new here"}),
        "orm": lambda w: Message.objects.create(conversation=w.conversation, author=w.ada, content="new here"),
        "service": lambda w: room_services.message_create(author=w.ada, conversation=w.conversation, content="new here"),
    },
}


def _save_content(pk: int, content: str) -> None:
    message = Message.objects.get(pk=pk)
    message.content = content
    message.save()


def _edit_message(w: World, message: Message, via: str) -> Any:
    author = w.bob if message.author_id == w.bob.pk else w.ada
    if via == "rest":
        return rest(w, author, "patch", f"/v1/messages/msg_{message.pk}", {"content": "edited"}, expect=200)
    if via == "admin":
        return admin_post(w, f"/admin/rooms/message/{message.pk}/change/", message_form(message, content="edited"))
    return _save_content(message.pk, "edited")


def _delete_message(w: World, message: Message, via: str) -> Any:
    if via == "rest":
        return rest(w, w.ada, "delete", f"/v1/messages/{message.pk}", expect=204)
    if via == "admin":
        return admin_delete(w, "message", message.pk)
    if via == "admin_bulk":
        return admin_delete_selected(w, "message", message.pk)
    if via == "orm_queryset":
        return Message.objects.filter(pk=message.pk).delete()
    return Message.objects.get(pk=message.pk).delete()


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "orm", "service"])
def test_message_new_is_one_exact_frame_on_its_channel(world, capture, where, via):
    with capture() as frames:
        NEW_MESSAGE[where][via](world)
    assert frames == [message_frame(newest_message(), "message:new")]


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "orm"])
def test_message_updated_is_one_exact_frame_on_its_channel(world, capture, where, via):
    message = world.room_message if where == "room" else world.dm
    with capture() as frames:
        _edit_message(world, message, via)
    expected = message_frame(message, "message:updated")
    assert expected["data"]["content"] == "edited"
    assert expected["data"]["edited_at"] is not None
    assert frames == [expected]


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "admin_bulk", "orm", "orm_queryset"])
def test_message_deleted_is_one_exact_frame_on_its_channel(world, capture, where, via):
    message = world.room_message if where == "room" else world.dm
    with capture() as frames:
        _delete_message(world, message, via)
    assert not Message.objects.filter(pk=message.pk).exists()
    assert frames == [message_deleted_frame(message)]


def test_conversation_message_events_carry_conversation_id_and_no_room_id(world, capture):
    with capture() as frames:
        created = _post_in_conversation(world)
        rest(world, world.ada, "patch", f"/v1/messages/{created['id']}", {"content": "edited"}, expect=200)
        rest(world, world.ada, "delete", f"/v1/messages/{created['id']}", expect=204)
    assert [frame["type"] for frame in frames] == ["message:new", "message:updated", "message:deleted"]
    assert [sorted(frame["data"]) for frame in frames] == [
        ["content", "conversation_id", "created_at", "edited_at", "id", "updated_at", "user_id"],
        ["content", "conversation_id", "created_at", "edited_at", "id", "updated_at", "user_id"],
        ["conversation_id", "deleted_at", "id", "user_id"],
    ]
    for frame in frames:
        assert frame["channel"] == f"conversation:{world.conversation.pk}"
        assert (frame["data"]["id"], frame["data"]["conversation_id"]) == (created["id"], f"conv_{world.conversation.pk}")


def test_message_new_data_is_what_rest_answers(world, capture):
    with capture() as frames:
        answer = _post_in_room(world)
    assert frames == [{"type": "message:new", "channel": f"room:{world.room.pk}", "data": answer}]
    assert answer["content"] == "new here"  # trimmed, as stored


def test_second_save_of_a_message_is_a_second_update(world, capture):
    with capture() as first:
        _save_content(world.room_message.pk, "one")
    with capture() as second:
        _save_content(world.room_message.pk, "two")
    assert [(frame["type"], frame["data"]["content"]) for frame in first] == [("message:updated", "one")]
    assert second == [message_frame(world.room_message, "message:updated")]


# --- room:updated --------------------------------------------------------------------------------


def _set_topic(pk: int) -> None:
    room = Room.objects.get(pk=pk)
    room.topic = "retro computing"
    room.save()


UPDATE_ROOM = {
    "rest": lambda w: rest(w, w.ada, "patch", f"/v1/rooms/room_{w.room.pk}", {"topic": "retro computing"}, expect=200),
    "rest_staff": lambda w: rest(w, w.root, "patch", f"/v1/rooms/{w.room.pk}", {"topic": "retro computing"}, expect=200),
    "admin": lambda w: admin_change_room(w, topic="retro computing"),
    "orm": lambda w: _set_topic(w.room.pk),
    "service": lambda w: room_services.room_update(room=Room.objects.get(pk=w.room.pk), topic="retro computing"),
}


@pytest.mark.parametrize("via", list(UPDATE_ROOM))
def test_room_updated_is_one_exact_frame_on_the_room_channel(world, capture, via):
    with capture() as frames:
        UPDATE_ROOM[via](world)
    expected = room_updated_frame(world.room)
    assert expected["data"]["topic"] == "retro computing"
    assert expected["data"]["member_count"] == 2
    assert frames == [expected]


def test_room_updated_data_is_what_rest_answers_without_the_viewers_is_member(world, capture):
    with capture() as frames:
        answer = UPDATE_ROOM["rest"](world)
    shared = {key: value for key, value in answer.items() if key != "is_member"}
    assert frames == [{"type": "room:updated", "channel": f"room:{world.room.pk}", "data": shared}]


def test_rest_patch_that_changes_nothing_sends_nothing(world, capture):
    with capture() as frames:
        rest(world, world.ada, "patch", f"/v1/rooms/{world.room.pk}", {}, expect=200)
    assert frames == []


def test_refused_room_change_sends_nothing(world, capture):
    with capture() as frames:
        rest(world, world.bob, "patch", f"/v1/rooms/{world.room.pk}", {"topic": "mine now"}, expect=403)
        rest(world, world.bob, "delete", f"/v1/rooms/{world.room.pk}", expect=403)
        rest(world, world.cy, "patch", f"/v1/messages/{world.room_message.pk}", {"content": "x"}, expect=403)
    assert frames == []


# --- Room deletion: room:deleted only ----------------------------------------------------------


DELETE_ROOM = {
    "rest": lambda w: rest(w, w.ada, "delete", f"/v1/rooms/{w.room.pk}", expect=204),
    "rest_staff": lambda w: rest(w, w.root, "delete", f"/v1/rooms/room_{w.room.pk}", expect=204),
    "admin": lambda w: admin_post(w, f"/admin/rooms/room/{w.room.pk}/delete/", {"post": "yes"}),
    "admin_bulk": lambda w: admin_post(
        w, "/admin/rooms/room/", {"action": "delete_selected", "_selected_action": [w.room.pk], "post": "yes"}
    ),
    "orm": lambda w: Room.objects.get(pk=w.room.pk).delete(),
    "orm_queryset": lambda w: Room.objects.filter(pk=w.room.pk).delete(),
    "service": lambda w: room_services.room_delete(room=Room.objects.get(pk=w.room.pk)),
}


@pytest.mark.parametrize("via", list(DELETE_ROOM))
def test_room_deletion_sends_room_deleted_on_the_room_and_each_members_feed_and_nothing_else(world, capture, via):
    pk = world.room.pk
    assert Message.objects.filter(room_id=pk).count() == 2
    with capture() as frames:
        DELETE_ROOM[via](world)
    assert not Room.objects.filter(pk=pk).exists()
    assert not Message.objects.filter(room_id=pk).exists()
    assert per_channel(frames) == [
        room_deleted_frame(f"room:{pk}", pk, "deleted"),
        room_deleted_frame(f"user:{world.ada.pk}", pk, "deleted"),
        room_deleted_frame(f"user:{world.bob.pk}", pk, "deleted"),
    ]


def test_bulk_deletion_of_two_rooms_sends_room_deleted_for_each(world, capture):
    other = factories.make_room(world.cy, "other", members=(world.bob,))
    with capture() as frames:
        admin_delete_selected(world, "room", world.room.pk, other.pk)
    # One delete of two rooms: which room's events come first is the cascade's choice.
    by_room = lambda frame: (frame["channel"], frame["data"]["id"])  # noqa: E731
    assert sorted(frames, key=by_room) == sorted([
        room_deleted_frame(f"room:{world.room.pk}", world.room.pk, "deleted"),
        room_deleted_frame(f"user:{world.ada.pk}", world.room.pk, "deleted"),
        room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, "deleted"),
        room_deleted_frame(f"room:{other.pk}", other.pk, "deleted"),
        room_deleted_frame(f"user:{world.cy.pk}", other.pk, "deleted"),
        room_deleted_frame(f"user:{world.bob.pk}", other.pk, "deleted"),
    ], key=by_room)


# --- Membership: room:created / room:deleted on the member's feed, room:updated on the room ------


ADD_MEMBER = {
    "rest_join": lambda w: rest(w, w.cy, "post", f"/v1/rooms/{w.room.pk}/members", {}, expect=201),
    "rest_added_by_owner": lambda w: rest(w, w.ada, "post", f"/v1/rooms/{w.room.pk}/members", {"user_id": f"user_{w.cy.pk}"}, expect=201),
    "admin": lambda w: admin_post(w, "/admin/rooms/membership/add/", {"room": w.room.pk, "user": w.cy.pk, "role": "member"}),
    "orm": lambda w: Membership.objects.create(room=Room.objects.get(pk=w.room.pk), user=w.cy),
    "service": lambda w: room_services.membership_add(room=Room.objects.get(pk=w.room.pk), user=w.cy),
}


@pytest.mark.parametrize("via", list(ADD_MEMBER))
def test_joining_sends_room_created_on_the_feed_and_room_updated_on_the_room(world, capture, via):
    with capture() as frames:
        ADD_MEMBER[via](world)
    room = room_data(world.room)
    assert room["member_count"] == 3
    assert frames == [
        room_created_frame(world.cy, room),
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
    ]


def test_room_created_on_joining_is_the_room_as_rest_returns_it(world, capture):
    with capture() as frames:
        ADD_MEMBER["rest_join"](world)
    answer = rest(world, world.cy, "get", f"/v1/rooms/{world.room.pk}", expect=200)
    assert frames[0] == {"type": "room:created", "channel": f"user:{world.cy.pk}", "data": answer}
    assert [frame["type"] for frame in frames] == ["room:created", "room:updated"]


def test_adding_a_member_again_sends_nothing(world, capture):
    with capture() as frames:
        rest(world, world.ada, "post", f"/v1/rooms/{world.room.pk}/members", {"user_id": f"user_{world.bob.pk}"}, expect=200)
    assert frames == []


def test_adding_a_member_in_the_room_admin_inline(world, capture):
    """The admin saves the room (a room:updated) and then the new membership: the last word on the
    room channel, like the member's room:created, carries the new member count."""
    with capture() as frames:
        admin_change_room(world, new_members=(world.cy,))
    room = room_data(world.room)
    assert room["member_count"] == 3
    assert frames == [
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": {**room, "member_count": 2}},
        room_created_frame(world.cy, room),
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
    ]


REMOVE_MEMBER = {
    "rest_leave": ("left", lambda w: rest(w, w.bob, "delete", f"/v1/rooms/{w.room.pk}/members/{w.bob.pk}", expect=204)),
    "rest_removed_by_owner": ("removed", lambda w: rest(w, w.ada, "delete", f"/v1/rooms/{w.room.pk}/members/user_{w.bob.pk}", expect=204)),
    "rest_removed_by_staff": ("removed", lambda w: rest(w, w.root, "delete", f"/v1/rooms/{w.room.pk}/members/{w.bob.pk}", expect=204)),
    "admin": ("removed", lambda w: admin_delete(w, "membership", _membership(w, w.bob).pk)),
    "admin_bulk": ("removed", lambda w: admin_delete_selected(w, "membership", _membership(w, w.bob).pk)),
    "orm": ("removed", lambda w: _membership(w, w.bob).delete()),
    "service_left": ("left", lambda w: room_services.membership_remove(
        membership=_membership(w, w.bob), reason=room_services.RemovalReason.LEFT)),
}


def _membership(w: World, user: User) -> Membership:
    return Membership.objects.get(room_id=w.room.pk, user=user)


@pytest.mark.parametrize("via", list(REMOVE_MEMBER))
def test_leaving_or_removal_sends_room_deleted_with_its_reason_on_the_feed_and_room_updated(world, capture, via):
    reason, change = REMOVE_MEMBER[via]
    with capture() as frames:
        change(world)
    room = room_data(world.room)
    assert room["member_count"] == 1
    assert frames == [
        room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, reason),
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
    ]


def test_removing_a_member_in_the_room_admin_inline(world, capture):
    with capture() as frames:
        admin_change_room(world, delete_members=(world.bob,))
    room = room_data(world.room)
    assert room["member_count"] == 1
    assert frames == [
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": {**room, "member_count": 2}},
        room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, "removed"),
        {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
    ]


def test_changing_a_members_role_sends_nothing(world, capture):
    with capture() as frames:
        membership = _membership(world, world.bob)
        membership.role = Membership.Role.ADMIN
        membership.save()
    assert frames == []


# --- Room creation -------------------------------------------------------------------------------


def test_creating_a_room_over_rest_sends_room_created_on_the_creators_feed(world, capture):
    with capture() as frames:
        answer = rest(world, world.cy, "post", "/v1/rooms", {"name": "lounge", "topic": "sofas"}, expect=201)
    room_pk = parse_channel(f"room:{answer['id']}").id
    room = room_data(Room.objects.get(pk=room_pk))
    assert answer == as_member(room)
    assert room["member_count"] == 1
    # The creator's membership also updates the new room's own channel (nobody can follow it yet).
    assert frames == [room_created_frame(world.cy, room), {"type": "room:updated", "channel": f"room:{room_pk}", "data": room}]


def test_creating_a_room_with_the_service_sends_room_created_on_the_creators_feed(world, capture):
    with capture() as frames:
        created = room_services.room_create(creator=world.cy, name="lounge", is_private=True)
    room = room_data(created)
    assert (room["is_private"], room["member_count"]) == (True, 1)
    assert frames == [room_created_frame(world.cy, room), {"type": "room:updated", "channel": f"room:{created.pk}", "data": room}]


# --- Conversation creation: conversation:created on each participant's feed --------------------

START_CONVERSATION = {
    "rest": lambda w: rest(w, w.cy, "post", "/v1/conversations", {"user_id": f"user_{w.ada.pk}"}, expect=201),
    "admin": lambda w: admin_post(w, "/admin/rooms/conversation/add/", {
        "user_low": w.ada.pk, "user_high": w.cy.pk,  # with the messages inline, empty
        "messages-TOTAL_FORMS": 0, "messages-INITIAL_FORMS": 0, "messages-MIN_NUM_FORMS": 0, "messages-MAX_NUM_FORMS": 1000,
    }),
    "orm": lambda w: Conversation.objects.create(user_low=w.ada, user_high=w.cy),
    "service": lambda w: room_services.conversation_get_or_create(user=w.cy, other=w.ada),
}


@pytest.mark.parametrize("via", list(START_CONVERSATION))
def test_a_new_conversation_is_conversation_created_on_each_participants_feed_and_nothing_else(world, capture, via):
    with capture() as frames:
        START_CONVERSATION[via](world)
    conversation = Conversation.objects.get(user_low=world.ada, user_high=world.cy)
    data = {
        "id": f"conv_{conversation.pk}",
        "participants": [f"user_{world.ada.pk}", f"user_{world.cy.pk}"],
        "created_at": iso(conversation.created_at),
    }
    assert frames == [
        {"type": "conversation:created", "channel": f"user:{world.ada.pk}", "data": data},
        {"type": "conversation:created", "channel": f"user:{world.cy.pk}", "data": data},
    ]


def test_conversation_created_is_the_conversation_as_rest_returns_it(world, capture):
    with capture() as frames:
        answer = START_CONVERSATION["rest"](world)
    assert [frame["data"] for frame in frames] == [answer, answer]


def test_getting_an_existing_conversation_sends_nothing(world, capture):
    with capture() as frames:
        rest(world, world.bob, "post", "/v1/conversations", {"user_id": f"user_{world.ada.pk}"}, expect=200)
    assert frames == []


# --- user:updated --------------------------------------------------------------------------------


NEW_PROFILE = {"display_name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"}


def _save_profile(pk: int, **fields: Any) -> None:
    user = User.objects.get(pk=pk)
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()


UPDATE_USER = {
    "rest": lambda w: rest(w, w.ada, "patch", "/v1/users/me", NEW_PROFILE, expect=200),
    "admin": lambda w: admin_change_user(w, w.ada, **NEW_PROFILE),
    "orm": lambda w: _save_profile(w.ada.pk, **NEW_PROFILE),
}


@pytest.mark.parametrize("via", list(UPDATE_USER))
def test_profile_change_sends_user_updated_with_the_public_profile(world, capture, via):
    with capture() as frames:
        UPDATE_USER[via](world)
    expected = user_updated_frame(world.ada)
    assert expected["data"]["display_name"] == "Ada Lovelace"
    assert expected["data"]["avatar_url"] == "https://example.com/ada.png"
    # On her own channel, then on the room she is a member of (room presence), with the same data.
    assert frames == [expected, {**expected, "channel": f"room:{world.room.pk}"}]


def test_user_updated_data_is_the_rest_profile_with_user_id_and_timestamp(world, capture):
    with capture() as frames:
        answer = UPDATE_USER["rest"](world)
    user_id = answer.pop("id")
    profile = {**answer, "user_id": user_id, "timestamp": TIMESTAMP}
    assert frames[0] == {"type": "user:updated", "channel": f"user:{world.ada.pk}", "data": profile}
    assert set(frames[0]["data"]) == {"user_id", "status", "timestamp", "username", "display_name", "avatar_url", "last_seen_at"}


def test_username_change_sends_user_updated(world, capture):
    with capture() as frames:
        _save_profile(world.cy.pk, username="cyrus")
    expected = user_updated_frame(world.cy)
    assert expected["data"]["username"] == "cyrus"
    assert frames == [expected]


def _touch_last_login(pk: int) -> None:
    user = User.objects.get(pk=pk)
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])


def _save_twice(pk: int) -> None:
    user = User.objects.get(pk=pk)
    user.display_name = "Once"
    user.save()
    user.save()


NOT_A_PROFILE_CHANGE = {
    "last_login": lambda w: _touch_last_login(w.ada.pk),
    "save_unchanged": lambda w: User.objects.get(pk=w.ada.pk).save(),
    "private_fields": lambda w: _save_profile(w.ada.pk, email="ada@example.com", first_name="Augusta"),
    "rest_same_values": lambda w: rest(w, w.ada, "patch", "/v1/users/me", {"display_name": "Ada"}, expect=200),
    "rest_empty": lambda w: rest(w, w.ada, "patch", "/v1/users/me", {}, expect=200),
    "admin_unchanged": lambda w: admin_change_user(w, w.ada),
    "session_login": lambda w: Client().force_login(w.ada),
    "api_key_use": lambda w: rest(w, w.ada, "get", "/v1/users/me", expect=200),
}


@pytest.mark.parametrize("via", list(NOT_A_PROFILE_CHANGE))
def test_save_that_changes_no_public_profile_field_sends_nothing(world, capture, via):
    with capture() as frames:
        NOT_A_PROFILE_CHANGE[via](world)
    assert frames == []


def test_saving_the_same_change_twice_sends_one_user_updated(world, capture):
    with capture() as frames:
        _save_twice(world.ada.pk)
    expected = user_updated_frame(world.ada)
    assert frames == [expected, {**expected, "channel": f"room:{world.room.pk}"}]


# --- Nothing on rollback -------------------------------------------------------------------------


class Abort(Exception):
    pass


def _assert_unchanged(w: World) -> None:
    room = Room.objects.get(pk=w.room.pk)
    assert (room.topic, room.memberships.count(), room.messages.count()) == ("", 2, 2)
    assert Message.objects.get(pk=w.dm.pk).content == "psst"
    assert User.objects.get(pk=w.ada.pk).display_name == "Ada"


ROLLED_BACK: dict[str, Callable[[World], Any]] = {
    "message_new": lambda w: room_services.message_create(author=w.bob, room=w.room, content="never"),
    "message_updated": lambda w: _save_content(w.dm.pk, "never"),
    "message_deleted": lambda w: Message.objects.get(pk=w.dm.pk).delete(),
    "room_updated": lambda w: _set_topic(w.room.pk),
    "room_deleted": lambda w: Room.objects.get(pk=w.room.pk).delete(),
    "member_added": lambda w: room_services.membership_add(room=w.room, user=w.cy),
    "member_removed": lambda w: Membership.objects.get(room_id=w.room.pk, user=w.bob).delete(),
    "user_updated": lambda w: _save_profile(w.ada.pk, **NEW_PROFILE),
    "room_created": lambda w: room_services.room_create(creator=w.cy, name="never"),
}


@pytest.mark.parametrize("change", list(ROLLED_BACK))
def test_rolled_back_change_sends_nothing(world, capture, change):
    with capture() as frames:
        with pytest.raises(Abort), transaction.atomic():
            ROLLED_BACK[change](world)
            raise Abort
    assert frames == []
    _assert_unchanged(world)


def test_rolled_back_savepoint_sends_nothing_while_the_committed_outer_change_sends_its_event(world, capture):
    with capture() as frames:
        with transaction.atomic():
            kept = room_services.message_create(author=world.bob, room=world.room, content="kept")
            with pytest.raises(Abort), transaction.atomic():
                room_services.message_create(author=world.bob, room=world.room, content="dropped")
                _set_topic(world.room.pk)
                raise Abort
    assert frames == [message_frame(kept, "message:new")]


# --- The same change has the same event, whoever makes it ---------------------------------------


def _frames_of(capture: Any, w: World, changes: list[Callable[[World], Any]]) -> list[list[dict]]:
    """The frames of each change, one capture per change."""
    published = []
    for change in changes:
        with capture() as frames:
            change(w)
        published.append(frames)
    return published


def _joins(w: World) -> list[Callable[[World], Any]]:
    """Three newcomers join the room: over REST, through the admin and with plain ORM code."""
    dee, eve, fay = (factories.make_user(name) for name in ("dee", "eve", "fay"))
    w.keys[dee.pk] = factories.make_key(dee)
    return [
        lambda w: rest(w, dee, "post", f"/v1/rooms/{w.room.pk}/members", {}, expect=201),
        lambda w: admin_post(w, "/admin/rooms/membership/add/", {"room": w.room.pk, "user": eve.pk, "role": "member"}),
        lambda w: Membership.objects.create(room=Room.objects.get(pk=w.room.pk), user=fay),
    ]


SAME_SHAPE: dict[str, Callable[[World], list[Callable[[World], Any]]]] = {
    "message:new": lambda w: [NEW_MESSAGE["room"][via] for via in ("rest", "admin", "orm")],
    "message:updated": lambda w: [lambda w, via=via: _edit_message(w, w.room_message, via) for via in ("rest", "admin", "orm")],
    "room:updated": lambda w: [UPDATE_ROOM[via] for via in ("rest", "admin", "orm")],
    "room:created": _joins,
    "user:updated": lambda w: [  # on ada's channel and on her room's
        lambda w: rest(w, w.ada, "patch", "/v1/users/me", {"display_name": "One"}, expect=200),
        lambda w: admin_change_user(w, w.ada, display_name="Two"),
        lambda w: _save_profile(w.ada.pk, display_name="Three"),
    ],
}


@pytest.mark.parametrize("kind", list(SAME_SHAPE))
def test_rest_admin_and_orm_send_events_of_identical_shape(world, capture, kind):
    rest_frames, admin_frames, orm_frames = _frames_of(capture, world, SAME_SHAPE[kind](world))
    assert [shape(f) for f in rest_frames] == [shape(f) for f in admin_frames] == [shape(f) for f in orm_frames]
    assert kind in {frame["type"] for frame in rest_frames}


def test_message_deleted_has_identical_shape_from_rest_admin_and_orm(world, capture):
    rest_msg, admin_msg, orm_msg = (factories.make_message(world.bob, room=world.room, content=f"m{i}") for i in range(3))
    frames = _frames_of(capture, world, [
        lambda w: _delete_message(w, rest_msg, "rest"),
        lambda w: _delete_message(w, admin_msg, "admin"),
        lambda w: _delete_message(w, orm_msg, "orm"),
    ])
    assert frames == [[message_deleted_frame(m)] for m in (rest_msg, admin_msg, orm_msg)]
    assert shape(frames[0][0]) == shape(frames[1][0]) == shape(frames[2][0])
