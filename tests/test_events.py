"""Events as specified: every change emits exactly one event per channel, with the
exact frame, whichever way it was made (REST, the Django admin, plain ORM code); nothing is sent for
a rolled-back change; deleting a room sends `room:deleted` and nothing else.

Each test joins the channel-layer groups of the channels involved (and of bystanders that must stay
silent) before the change, compares whole decoded frames with `==`, then proves that nothing else
arrived. Expected payloads are built here from the database, not by the code under test.
"""
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.test import AsyncClient
from django.utils import timezone

from realtime.channel_names import parse_channel
from rooms import services as room_services
from rooms.models import Conversation, Membership, Message, Room
from tests import factories
from tests.openapi import check_response
from tests.layer import LayerListener
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

sync = database_sync_to_async

_ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", re.ASCII)


class _IsoTimestamp:
    """Equal to any ISO 8601 UTC timestamp ending in `Z`: for server clock readings (`deleted_at`,
    `timestamp`) whose value a test cannot know and must not guess."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and _ISO_Z.fullmatch(other) is not None

    def __repr__(self) -> str:
        return "<ISO 8601 timestamp ending in Z>"


ISO_TIMESTAMP = _IsoTimestamp()


def iso(value: datetime) -> str:
    """How the API writes a timestamp: ISO 8601 in UTC with a `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    admin: AsyncClient

    def key(self, user: User) -> str:
        return self.keys[user.pk]


def _build_world() -> dict[str, Any]:
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
    return {
        "ada": ada, "bob": bob, "cy": cy, "root": root, "room": room, "conversation": conversation,
        "room_message": room_message, "dm": dm, "keys": keys,
    }


@pytest.fixture
async def world(transactional_db) -> World:
    built = await sync(_build_world)()
    admin = AsyncClient()
    await admin.aforce_login(built["root"])  # before any listener: logging in is no event anyway
    return World(**built, admin=admin)


def channels_of(w: World, *extra: str) -> list[str]:
    """The room, the conversation and every user's feed: a change must reach only its own channel."""
    return [
        f"room:{w.room.pk}", f"conversation:{w.conversation.pk}",
        *(f"user:{u.pk}" for u in (w.ada, w.bob, w.cy, w.root)), *extra,
    ]


# --- Making changes ----------------------------------------------------------------------------


async def rest(w: World, user: User, method: str, path: str, body: dict | None = None, *, expect: int) -> Any:
    client = AsyncClient()
    kwargs: dict[str, Any] = {"headers": {"authorization": f"Bearer {w.key(user)}"}}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    response = await getattr(client, method)(path, **kwargs)
    assert response.status_code == expect, response.content
    check_response(method.upper(), path, response)
    return response.json() if response.content else None


async def admin_post(w: World, path: str, data: dict[str, Any]) -> None:
    """POST an admin form; a redirect means the admin accepted it (a 200 is a form with errors)."""
    response = await w.admin.post(path, data)
    assert response.status_code == 302, response.content.decode()[:3000]


async def admin_delete(w: World, model: str, pk: int) -> None:
    await admin_post(w, f"/admin/rooms/{model}/{pk}/delete/", {"post": "yes"})


async def admin_delete_selected(w: World, model: str, *pks: int) -> None:
    await admin_post(w, f"/admin/rooms/{model}/", {"action": "delete_selected", "_selected_action": list(pks), "post": "yes"})


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


async def admin_change_room(w: World, **kwargs: Any) -> None:
    form = await sync(_room_form)(await sync(Room.objects.get)(pk=w.room.pk), **kwargs)
    await admin_post(w, f"/admin/rooms/room/{w.room.pk}/change/", form)


def _user_form(user: User, **changes: Any) -> dict[str, Any]:
    form = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name, "email": user.email,
        "display_name": user.display_name, "avatar_url": user.avatar_url,
    }
    if user.is_active:
        form["is_active"] = "on"
    return {**form, **changes}


async def admin_change_user(w: World, user: User, **changes: Any) -> None:
    form = await sync(_user_form)(await sync(User.objects.get)(pk=user.pk), **changes)
    await admin_post(w, f"/admin/users/user/{user.pk}/change/", form)


def _orm(fn: Callable[[], Any]) -> Awaitable[Any]:
    return sync(fn)()


# --- Expected payloads, read back from the database --------------------------------------------


def _message_data(message: Message) -> dict[str, Any]:
    where = (
        {"room_id": f"room_{message.room_id}"} if message.room_id is not None
        else {"conversation_id": f"conv_{message.conversation_id}"}
    )
    return {
        "id": f"msg_{message.pk}", **where, "user_id": f"user_{message.author_id}", "content": message.content,
        "created_at": iso(message.created_at), "updated_at": iso(message.updated_at),
        "edited_at": iso(message.edited_at) if message.edited_at else None,
    }


@sync
def message_frame(event_type: str, pk: int) -> dict[str, Any]:
    message = Message.objects.get(pk=pk)
    channel = f"room:{message.room_id}" if message.room_id else f"conversation:{message.conversation_id}"
    return {"type": event_type, "channel": channel, "data": _message_data(message)}


def message_deleted_frame(message: Message) -> dict[str, Any]:
    data = _message_data(message)
    del data["content"], data["created_at"], data["updated_at"], data["edited_at"]
    channel = f"room:{message.room_id}" if message.room_id else f"conversation:{message.conversation_id}"
    return {"type": "message:deleted", "channel": channel, "data": {**data, "deleted_at": ISO_TIMESTAMP}}


@sync
def newest_message_pk() -> int:
    return Message.objects.order_by("-pk").values_list("pk", flat=True)[0]


@sync
def room_data(pk: int) -> dict[str, Any]:
    """The room as REST returns it, without the viewer's `is_member`: the data of room:updated."""
    room = Room.objects.get(pk=pk)
    return {
        "id": f"room_{room.pk}", "name": room.name, "topic": room.topic, "is_private": room.is_private,
        "created_by": f"user_{room.created_by_id}" if room.created_by_id else None,
        "created_at": iso(room.created_at), "updated_at": iso(room.updated_at),
        "member_count": room.memberships.count(),
    }


def as_member(room: dict[str, Any]) -> dict[str, Any]:
    """The data of room:created on a member's own feed: the room as REST returns it to that member."""
    return {**room, "is_member": True}


def room_deleted_frame(channel: str, room_pk: int, reason: str) -> dict[str, Any]:
    return {"type": "room:deleted", "channel": channel, "data": {"id": f"room_{room_pk}", "reason": reason}}


@sync
def user_updated_frame(pk: int) -> dict[str, Any]:
    user = User.objects.get(pk=pk)
    return {
        "type": "user:updated",
        "channel": f"user:{pk}",
        "data": {
            "user_id": f"user_{pk}", "status": "offline", "timestamp": ISO_TIMESTAMP, "username": user.username,
            "display_name": user.display_name, "avatar_url": user.avatar_url,
            "last_seen_at": iso(user.last_seen_at) if user.last_seen_at else None,
        },
    }


def canonical(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames in a fixed order: the protocol orders events within a channel, not across channels."""
    return sorted(frames, key=lambda frame: (frame["channel"], frame["type"], frame["data"].get("id", "")))


async def receive_exactly(listener: LayerListener, count: int) -> list[dict[str, Any]]:
    """`count` events and then silence, in canonical order."""
    received = await listener.events(count)
    await listener.assert_silent()
    return canonical(received)


def shape(frame: dict[str, Any]) -> tuple:
    return frame["type"], parse_channel(frame["channel"]).kind, sorted(frame["data"])


# --- message:new / message:updated / message:deleted -------------------------------------------


def _post_in_room(w: World) -> Awaitable[Any]:
    return rest(w, w.bob, "post", f"/v1/rooms/{w.room.pk}/messages", {"content": "  new here  "}, expect=201)


def _post_in_conversation(w: World) -> Awaitable[Any]:
    return rest(w, w.ada, "post", f"/v1/conversations/conv_{w.conversation.pk}/messages", {"content": "new here"}, expect=201)


NEW_MESSAGE = {
    "room": {
        "rest": _post_in_room,
        "admin": lambda w: admin_post(w, "/admin/rooms/message/add/", {"room": w.room.pk, "conversation": "", "author": w.bob.pk, "content": "new here"}),
        "orm": lambda w: _orm(lambda: Message.objects.create(room=w.room, author=w.bob, content="new here")),
        "service": lambda w: _orm(lambda: room_services.message_create(author=w.bob, room=w.room, content="new here")),
    },
    "conversation": {
        "rest": _post_in_conversation,
        "admin": lambda w: admin_post(w, "/admin/rooms/message/add/", {"room": "", "conversation": w.conversation.pk, "author": w.ada.pk, "content": "new here"}),
        "orm": lambda w: _orm(lambda: Message.objects.create(conversation=w.conversation, author=w.ada, content="new here")),
        "service": lambda w: _orm(lambda: room_services.message_create(author=w.ada, conversation=w.conversation, content="new here")),
    },
}


def _save_content(pk: int, content: str) -> None:
    message = Message.objects.get(pk=pk)
    message.content = content
    message.save()


def _edit_message(w: World, message: Message, via: str) -> Awaitable[Any]:
    author = w.bob if message.author_id == w.bob.pk else w.ada
    if via == "rest":
        return rest(w, author, "patch", f"/v1/messages/msg_{message.pk}", {"content": "edited"}, expect=200)
    if via == "admin":
        return admin_post(w, f"/admin/rooms/message/{message.pk}/change/", message_form(message, content="edited"))
    return _orm(lambda: _save_content(message.pk, "edited"))


def _delete_message(w: World, message: Message, via: str) -> Awaitable[Any]:
    if via == "rest":
        return rest(w, w.ada, "delete", f"/v1/messages/{message.pk}", expect=204)
    if via == "admin":
        return admin_delete(w, "message", message.pk)
    if via == "admin_bulk":
        return admin_delete_selected(w, "message", message.pk)
    if via == "orm_queryset":
        return _orm(lambda: Message.objects.filter(pk=message.pk).delete())
    return _orm(lambda: Message.objects.get(pk=message.pk).delete())


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "orm", "service"])
async def test_message_new_is_one_exact_frame_on_its_channel(world, where, via):
    async with LayerListener(*channels_of(world)) as listener:
        await NEW_MESSAGE[where][via](world)
        pk = await newest_message_pk()
        assert await receive_exactly(listener, 1) == [await message_frame("message:new", pk)]


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "orm"])
async def test_message_updated_is_one_exact_frame_on_its_channel(world, where, via):
    message = world.room_message if where == "room" else world.dm
    async with LayerListener(*channels_of(world)) as listener:
        await _edit_message(world, message, via)
        expected = await message_frame("message:updated", message.pk)
        assert expected["data"]["content"] == "edited"
        assert expected["data"]["edited_at"] is not None
        assert await receive_exactly(listener, 1) == [expected]


@pytest.mark.parametrize("where", ["room", "conversation"])
@pytest.mark.parametrize("via", ["rest", "admin", "admin_bulk", "orm", "orm_queryset"])
async def test_message_deleted_is_one_exact_frame_on_its_channel(world, where, via):
    message = world.room_message if where == "room" else world.dm
    async with LayerListener(*channels_of(world)) as listener:
        await _delete_message(world, message, via)
        assert not await sync(Message.objects.filter(pk=message.pk).exists)()
        assert await receive_exactly(listener, 1) == [message_deleted_frame(message)]


async def test_conversation_message_events_carry_conversation_id_and_no_room_id(world):
    async with LayerListener(f"conversation:conv_{world.conversation.pk}") as listener:
        created = await _post_in_conversation(world)
        await rest(world, world.ada, "patch", f"/v1/messages/{created['id']}", {"content": "edited"}, expect=200)
        await rest(world, world.ada, "delete", f"/v1/messages/{created['id']}", expect=204)
        frames = await listener.events(3)
        await listener.assert_silent()
    assert [frame["type"] for frame in frames] == ["message:new", "message:updated", "message:deleted"]
    assert [sorted(frame["data"]) for frame in frames] == [
        ["content", "conversation_id", "created_at", "edited_at", "id", "updated_at", "user_id"],
        ["content", "conversation_id", "created_at", "edited_at", "id", "updated_at", "user_id"],
        ["conversation_id", "deleted_at", "id", "user_id"],
    ]
    for frame in frames:
        assert frame["channel"] == f"conversation:{world.conversation.pk}"
        assert (frame["data"]["id"], frame["data"]["conversation_id"]) == (created["id"], f"conv_{world.conversation.pk}")


async def test_message_new_data_is_what_rest_answers(world):
    async with LayerListener(f"room:{world.room.pk}") as listener:
        answer = await _post_in_room(world)
        assert await receive_exactly(listener, 1) == [{"type": "message:new", "channel": f"room:{world.room.pk}", "data": answer}]
    assert answer["content"] == "new here"  # trimmed, as stored


async def test_second_save_of_a_message_is_a_second_update(world):
    async with LayerListener(f"room:{world.room.pk}") as listener:
        await _orm(lambda: _save_content(world.room_message.pk, "one"))
        first = await listener.next_event()
        await _orm(lambda: _save_content(world.room_message.pk, "two"))
        second = await listener.next_event()
        await listener.assert_silent()
    assert (first["type"], first["data"]["content"]) == ("message:updated", "one")
    assert second == await message_frame("message:updated", world.room_message.pk)


# --- room:updated --------------------------------------------------------------------------------


def _set_topic(pk: int) -> None:
    room = Room.objects.get(pk=pk)
    room.topic = "retro computing"
    room.save()


UPDATE_ROOM = {
    "rest": lambda w: rest(w, w.ada, "patch", f"/v1/rooms/room_{w.room.pk}", {"topic": "retro computing"}, expect=200),
    "rest_staff": lambda w: rest(w, w.root, "patch", f"/v1/rooms/{w.room.pk}", {"topic": "retro computing"}, expect=200),
    "admin": lambda w: admin_change_room(w, topic="retro computing"),
    "orm": lambda w: _orm(lambda: _set_topic(w.room.pk)),
    "service": lambda w: _orm(lambda: room_services.room_update(room=Room.objects.get(pk=w.room.pk), topic="retro computing")),
}


@pytest.mark.parametrize("via", list(UPDATE_ROOM))
async def test_room_updated_is_one_exact_frame_on_the_room_channel(world, via):
    async with LayerListener(*channels_of(world)) as listener:
        await UPDATE_ROOM[via](world)
        expected = {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": await room_data(world.room.pk)}
        assert expected["data"]["topic"] == "retro computing"
        assert expected["data"]["member_count"] == 2
        assert await receive_exactly(listener, 1) == [expected]


async def test_room_updated_data_is_what_rest_answers_without_the_viewers_is_member(world):
    async with LayerListener(f"room:{world.room.pk}") as listener:
        answer = await UPDATE_ROOM["rest"](world)
        shared = {key: value for key, value in answer.items() if key != "is_member"}
        assert await receive_exactly(listener, 1) == [{"type": "room:updated", "channel": f"room:{world.room.pk}", "data": shared}]


async def test_rest_patch_that_changes_nothing_sends_nothing(world):
    async with LayerListener(*channels_of(world)) as listener:
        await rest(world, world.ada, "patch", f"/v1/rooms/{world.room.pk}", {}, expect=200)
        await listener.assert_silent()


async def test_refused_room_change_sends_nothing(world):
    async with LayerListener(*channels_of(world)) as listener:
        await rest(world, world.bob, "patch", f"/v1/rooms/{world.room.pk}", {"topic": "mine now"}, expect=403)
        await rest(world, world.bob, "delete", f"/v1/rooms/{world.room.pk}", expect=403)
        await rest(world, world.cy, "patch", f"/v1/messages/{world.room_message.pk}", {"content": "x"}, expect=403)
        await listener.assert_silent()


# --- Room deletion: room:deleted only ----------------------------------------------------------


DELETE_ROOM = {
    "rest": lambda w: rest(w, w.ada, "delete", f"/v1/rooms/{w.room.pk}", expect=204),
    "rest_staff": lambda w: rest(w, w.root, "delete", f"/v1/rooms/room_{w.room.pk}", expect=204),
    "admin": lambda w: admin_post(w, f"/admin/rooms/room/{w.room.pk}/delete/", {"post": "yes"}),
    "admin_bulk": lambda w: admin_post(
        w, "/admin/rooms/room/", {"action": "delete_selected", "_selected_action": [w.room.pk], "post": "yes"}
    ),
    "orm": lambda w: _orm(lambda: Room.objects.get(pk=w.room.pk).delete()),
    "orm_queryset": lambda w: _orm(lambda: Room.objects.filter(pk=w.room.pk).delete()),
    "service": lambda w: _orm(lambda: room_services.room_delete(room=Room.objects.get(pk=w.room.pk))),
}


@pytest.mark.parametrize("via", list(DELETE_ROOM))
async def test_room_deletion_sends_room_deleted_on_the_room_and_each_members_feed_and_nothing_else(world, via):
    pk = world.room.pk
    assert await sync(Message.objects.filter(room_id=pk).count)() == 2
    async with LayerListener(*channels_of(world)) as listener:
        await DELETE_ROOM[via](world)
        assert not await sync(Room.objects.filter(pk=pk).exists)()
        assert not await sync(Message.objects.filter(room_id=pk).exists)()
        assert await receive_exactly(listener, 3) == canonical([
            room_deleted_frame(f"room:{pk}", pk, "deleted"),
            room_deleted_frame(f"user:{world.ada.pk}", pk, "deleted"),
            room_deleted_frame(f"user:{world.bob.pk}", pk, "deleted"),
        ])


async def test_bulk_deletion_of_two_rooms_sends_room_deleted_for_each(world):
    other = await sync(factories.make_room)(world.cy, "other", members=(world.bob,))
    async with LayerListener(*channels_of(world, f"room:{other.pk}")) as listener:
        await admin_delete_selected(world, "room", world.room.pk, other.pk)
        assert await receive_exactly(listener, 6) == canonical([
            room_deleted_frame(f"room:{world.room.pk}", world.room.pk, "deleted"),
            room_deleted_frame(f"user:{world.ada.pk}", world.room.pk, "deleted"),
            room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, "deleted"),
            room_deleted_frame(f"room:{other.pk}", other.pk, "deleted"),
            room_deleted_frame(f"user:{world.cy.pk}", other.pk, "deleted"),
            room_deleted_frame(f"user:{world.bob.pk}", other.pk, "deleted"),
        ])


# --- Membership: room:created / room:deleted on the member's feed, room:updated on the room ------


ADD_MEMBER = {
    "rest_join": lambda w: rest(w, w.cy, "post", f"/v1/rooms/{w.room.pk}/members", {}, expect=201),
    "rest_added_by_owner": lambda w: rest(w, w.ada, "post", f"/v1/rooms/{w.room.pk}/members", {"user_id": f"user_{w.cy.pk}"}, expect=201),
    "admin": lambda w: admin_post(w, "/admin/rooms/membership/add/", {"room": w.room.pk, "user": w.cy.pk, "role": "member"}),
    "orm": lambda w: _orm(lambda: Membership.objects.create(room=Room.objects.get(pk=w.room.pk), user=w.cy)),
    "service": lambda w: _orm(lambda: room_services.membership_add(room=Room.objects.get(pk=w.room.pk), user=w.cy)),
}


@pytest.mark.parametrize("via", list(ADD_MEMBER))
async def test_joining_sends_room_created_on_the_feed_and_room_updated_on_the_room(world, via):
    async with LayerListener(*channels_of(world)) as listener:
        await ADD_MEMBER[via](world)
        room = await room_data(world.room.pk)
        assert room["member_count"] == 3
        assert await receive_exactly(listener, 2) == [
            {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
            {"type": "room:created", "channel": f"user:{world.cy.pk}", "data": as_member(room)},
        ]


async def test_room_created_on_joining_is_the_room_as_rest_returns_it(world):
    async with LayerListener(f"user:{world.cy.pk}") as listener:
        await ADD_MEMBER["rest_join"](world)
        answer = await rest(world, world.cy, "get", f"/v1/rooms/{world.room.pk}", expect=200)
        assert await receive_exactly(listener, 1) == [{"type": "room:created", "channel": f"user:{world.cy.pk}", "data": answer}]


async def test_adding_a_member_again_sends_nothing(world):
    async with LayerListener(*channels_of(world)) as listener:
        await rest(world, world.ada, "post", f"/v1/rooms/{world.room.pk}/members", {"user_id": f"user_{world.bob.pk}"}, expect=200)
        await listener.assert_silent()


async def test_adding_a_member_in_the_room_admin_inline(world):
    """The admin saves the room (a room:updated) and then the new membership: the last word on the
    room channel, like the member's room:created, carries the new member count."""
    async with LayerListener(f"room:{world.room.pk}", f"user:{world.cy.pk}") as listener:
        await admin_change_room(world, new_members=(world.cy,))
        room = await room_data(world.room.pk)
        assert room["member_count"] == 3
        frames = await listener.events(3)
        await listener.assert_silent()
    on_feed = [frame for frame in frames if frame["channel"] == f"user:{world.cy.pk}"]
    on_room = [frame for frame in frames if frame["channel"] == f"room:{world.room.pk}"]
    assert on_feed == [{"type": "room:created", "channel": f"user:{world.cy.pk}", "data": as_member(room)}]
    assert [frame["type"] for frame in on_room] == ["room:updated", "room:updated"]
    assert on_room[-1] == {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room}


def _membership_pk(w: World, user: User) -> int:
    return Membership.objects.get(room_id=w.room.pk, user=user).pk


REMOVE_MEMBER = {
    "rest_leave": ("left", lambda w: rest(w, w.bob, "delete", f"/v1/rooms/{w.room.pk}/members/{w.bob.pk}", expect=204)),
    "rest_removed_by_owner": ("removed", lambda w: rest(w, w.ada, "delete", f"/v1/rooms/{w.room.pk}/members/user_{w.bob.pk}", expect=204)),
    "rest_removed_by_staff": ("removed", lambda w: rest(w, w.root, "delete", f"/v1/rooms/{w.room.pk}/members/{w.bob.pk}", expect=204)),
    "admin": ("removed", lambda w: _admin_delete_membership(w, bulk=False)),
    "admin_bulk": ("removed", lambda w: _admin_delete_membership(w, bulk=True)),
    "orm": ("removed", lambda w: _orm(lambda: Membership.objects.get(room_id=w.room.pk, user=w.bob).delete())),
    "service_left": ("left", lambda w: _orm(lambda: room_services.membership_remove(
        membership=Membership.objects.get(room_id=w.room.pk, user=w.bob), reason=room_services.RemovalReason.LEFT))),
}


async def _admin_delete_membership(w: World, *, bulk: bool) -> None:
    pk = await sync(_membership_pk)(w, w.bob)
    await (admin_delete_selected(w, "membership", pk) if bulk else admin_delete(w, "membership", pk))


@pytest.mark.parametrize("via", list(REMOVE_MEMBER))
async def test_leaving_or_removal_sends_room_deleted_with_its_reason_on_the_feed_and_room_updated(world, via):
    reason, change = REMOVE_MEMBER[via]
    async with LayerListener(*channels_of(world)) as listener:
        await change(world)
        room = await room_data(world.room.pk)
        assert room["member_count"] == 1
        assert await receive_exactly(listener, 2) == [
            {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room},
            room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, reason),
        ]


async def test_removing_a_member_in_the_room_admin_inline(world):
    async with LayerListener(f"room:{world.room.pk}", f"user:{world.bob.pk}") as listener:
        await admin_change_room(world, delete_members=(world.bob,))
        room = await room_data(world.room.pk)
        assert room["member_count"] == 1
        frames = await listener.events(3)
        await listener.assert_silent()
    on_feed = [frame for frame in frames if frame["channel"] == f"user:{world.bob.pk}"]
    on_room = [frame for frame in frames if frame["channel"] == f"room:{world.room.pk}"]
    assert on_feed == [room_deleted_frame(f"user:{world.bob.pk}", world.room.pk, "removed")]
    assert [frame["type"] for frame in on_room] == ["room:updated", "room:updated"]
    assert on_room[-1] == {"type": "room:updated", "channel": f"room:{world.room.pk}", "data": room}


async def test_changing_a_members_role_sends_nothing(world):
    def promote() -> None:
        membership = Membership.objects.get(room_id=world.room.pk, user=world.bob)
        membership.role = Membership.Role.ADMIN
        membership.save()

    async with LayerListener(*channels_of(world)) as listener:
        await _orm(promote)
        await listener.assert_silent()


# --- Room creation -------------------------------------------------------------------------------


async def test_creating_a_room_over_rest_sends_room_created_on_the_creators_feed(world):
    async with LayerListener(*channels_of(world)) as listener:
        answer = await rest(world, world.cy, "post", "/v1/rooms", {"name": "lounge", "topic": "sofas"}, expect=201)
        pk = parse_channel(f"room:{answer['id']}").id
        room = await room_data(pk)
        assert answer == as_member(room)
        assert room["member_count"] == 1
        assert await receive_exactly(listener, 1) == [{"type": "room:created", "channel": f"user:{world.cy.pk}", "data": as_member(room)}]


async def test_creating_a_room_with_the_service_sends_room_created_on_the_creators_feed(world):
    async with LayerListener(*channels_of(world)) as listener:
        created = await _orm(lambda: room_services.room_create(creator=world.cy, name="lounge", is_private=True))
        room = await room_data(created.pk)
        assert (room["is_private"], room["member_count"]) == (True, 1)
        assert await receive_exactly(listener, 1) == [{"type": "room:created", "channel": f"user:{world.cy.pk}", "data": as_member(room)}]


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
    "orm": lambda w: _orm(lambda: _save_profile(w.ada.pk, **NEW_PROFILE)),
}


@pytest.mark.parametrize("via", list(UPDATE_USER))
async def test_profile_change_sends_user_updated_with_the_public_profile(world, via):
    async with LayerListener(*channels_of(world)) as listener:
        await UPDATE_USER[via](world)
        expected = await user_updated_frame(world.ada.pk)
        assert expected["data"]["display_name"] == "Ada Lovelace"
        assert expected["data"]["avatar_url"] == "https://example.com/ada.png"
        # On her own channel, then on the room she is a member of (room presence), with the same data.
        assert await receive_exactly(listener, 2) == canonical([expected, {**expected, "channel": f"room:{world.room.pk}"}])


async def test_user_updated_data_is_the_rest_profile_with_user_id_and_timestamp(world):
    async with LayerListener(f"user:{world.ada.pk}") as listener:
        answer = await UPDATE_USER["rest"](world)
        (frame,) = await receive_exactly(listener, 1)
    user_id = answer.pop("id")
    profile = {**answer, "user_id": user_id, "timestamp": ISO_TIMESTAMP}
    assert frame == {"type": "user:updated", "channel": f"user:{world.ada.pk}", "data": profile}
    assert set(frame["data"]) == {"user_id", "status", "timestamp", "username", "display_name", "avatar_url", "last_seen_at"}


async def test_username_change_sends_user_updated(world):
    async with LayerListener(f"user:{world.cy.pk}") as listener:
        await _orm(lambda: _save_profile(world.cy.pk, username="cyrus"))
        expected = await user_updated_frame(world.cy.pk)
        assert expected["data"]["username"] == "cyrus"
        assert await receive_exactly(listener, 1) == [expected]


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
    "last_login": lambda w: _orm(lambda: _touch_last_login(w.ada.pk)),
    "save_unchanged": lambda w: _orm(lambda: User.objects.get(pk=w.ada.pk).save()),
    "private_fields": lambda w: _orm(lambda: _save_profile(w.ada.pk, email="ada@example.com", first_name="Augusta")),
    "rest_same_values": lambda w: rest(w, w.ada, "patch", "/v1/users/me", {"display_name": "Ada"}, expect=200),
    "rest_empty": lambda w: rest(w, w.ada, "patch", "/v1/users/me", {}, expect=200),
    "admin_unchanged": lambda w: admin_change_user(w, w.ada),
    "session_login": lambda w: AsyncClient().aforce_login(w.ada),
    "api_key_use": lambda w: rest(w, w.ada, "get", "/v1/users/me", expect=200),
}


@pytest.mark.parametrize("via", list(NOT_A_PROFILE_CHANGE))
async def test_save_that_changes_no_public_profile_field_sends_nothing(world, via):
    async with LayerListener(*channels_of(world)) as listener:
        await NOT_A_PROFILE_CHANGE[via](world)
        await listener.assert_silent()


async def test_saving_the_same_change_twice_sends_one_user_updated(world):
    async with LayerListener(f"user:{world.ada.pk}") as listener:
        await _orm(lambda: _save_twice(world.ada.pk))
        assert await receive_exactly(listener, 1) == [await user_updated_frame(world.ada.pk)]


# --- Nothing on rollback -------------------------------------------------------------------------


class Abort(Exception):
    pass


def _rolled_back(change: Callable[[World], Any]) -> Callable[[World], None]:
    def run(w: World) -> None:
        with pytest.raises(Abort), transaction.atomic():
            change(w)
            raise Abort

    return run


def _assert_unchanged(w: World) -> None:
    room = Room.objects.get(pk=w.room.pk)
    assert (room.topic, room.memberships.count(), room.messages.count()) == ("", 2, 2)
    assert Message.objects.get(pk=w.dm.pk).content == "psst"
    assert User.objects.get(pk=w.ada.pk).display_name == "Ada"


ROLLED_BACK = {
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
async def test_rolled_back_change_sends_nothing(world, change):
    async with LayerListener(*channels_of(world)) as listener:
        await _orm(lambda: _rolled_back(ROLLED_BACK[change])(world))
        await listener.assert_silent()
    await _orm(lambda: _assert_unchanged(world))


async def test_rolled_back_savepoint_sends_nothing_while_the_committed_outer_change_sends_its_event(world):
    def change() -> int:
        with transaction.atomic():
            kept = room_services.message_create(author=world.bob, room=world.room, content="kept")
            with pytest.raises(Abort), transaction.atomic():
                room_services.message_create(author=world.bob, room=world.room, content="dropped")
                _set_topic(world.room.pk)
                raise Abort
        return kept.pk

    async with LayerListener(*channels_of(world)) as listener:
        kept_pk = await _orm(change)
        assert await receive_exactly(listener, 1) == [await message_frame("message:new", kept_pk)]


# --- The same change has the same event, whoever makes it ---------------------------------------


async def _frames_of(w: World, listener: LayerListener, changes: "Changes", per_change: int) -> list[list[dict]]:
    frames = []
    for change in changes:
        await change(w)
        frames.append(canonical(await listener.events(per_change)))
    await listener.assert_silent()
    return frames


def _newcomers() -> list[User]:
    return [factories.make_user(name) for name in ("dee", "eve", "fay")]


Changes = list[Callable[[World], Awaitable[Any]]]


async def _joins(w: World) -> tuple[Changes, list[str]]:
    """Three newcomers join the room: over REST, through the admin and with plain ORM code."""
    dee, eve, fay = await sync(_newcomers)()
    w.keys[dee.pk] = await sync(factories.make_key)(dee)
    changes: Changes = [
        lambda w: rest(w, dee, "post", f"/v1/rooms/{w.room.pk}/members", {}, expect=201),
        lambda w: admin_post(w, "/admin/rooms/membership/add/", {"room": w.room.pk, "user": eve.pk, "role": "member"}),
        lambda w: _orm(lambda: Membership.objects.create(room=Room.objects.get(pk=w.room.pk), user=fay)),
    ]
    return changes, [f"user:{u.pk}" for u in (dee, eve, fay)]


async def _same(changes: Changes) -> tuple[Changes, list[str]]:
    return changes, []


SAME_SHAPE = {
    "message:new": (1, lambda w: _same([NEW_MESSAGE["room"][via] for via in ("rest", "admin", "orm")])),
    "message:updated": (1, lambda w: _same([lambda w, via=via: _edit_message(w, w.room_message, via) for via in ("rest", "admin", "orm")])),
    "room:updated": (1, lambda w: _same([UPDATE_ROOM[via] for via in ("rest", "admin", "orm")])),
    "room:created": (2, _joins),
    "user:updated": (2, lambda w: _same([  # on ada's channel and on her room's
        lambda w: rest(w, w.ada, "patch", "/v1/users/me", {"display_name": "One"}, expect=200),
        lambda w: admin_change_user(w, w.ada, display_name="Two"),
        lambda w: _orm(lambda: _save_profile(w.ada.pk, display_name="Three")),
    ])),
}


@pytest.mark.parametrize("kind", list(SAME_SHAPE))
async def test_rest_admin_and_orm_send_events_of_identical_shape(world, kind):
    per_change, make_changes = SAME_SHAPE[kind]
    changes, newcomers = await make_changes(world)
    async with LayerListener(*channels_of(world, *newcomers)) as listener:
        rest_frames, admin_frames, orm_frames = await _frames_of(world, listener, changes, per_change)
    assert [shape(f) for f in rest_frames] == [shape(f) for f in admin_frames] == [shape(f) for f in orm_frames]
    assert kind in {frame["type"] for frame in rest_frames}


async def test_message_deleted_has_identical_shape_from_rest_admin_and_orm(world):
    def more_messages() -> list[Message]:
        return [factories.make_message(world.bob, room=world.room, content=f"m{i}") for i in range(3)]

    rest_msg, admin_msg, orm_msg = await _orm(more_messages)
    async with LayerListener(*channels_of(world)) as listener:
        frames = await _frames_of(world, listener, [
            lambda w: _delete_message(w, rest_msg, "rest"),
            lambda w: _delete_message(w, admin_msg, "admin"),
            lambda w: _delete_message(w, orm_msg, "orm"),
        ], 1)
    assert [f[0] for f in frames] == [message_deleted_frame(m) for m in (rest_msg, admin_msg, orm_msg)]
    assert shape(frames[0][0]) == shape(frames[1][0]) == shape(frames[2][0])
