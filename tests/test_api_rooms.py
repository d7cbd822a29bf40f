"""REST: rooms and their members."""

import pytest

from rooms import services
from rooms.models import Membership, Room
from tests import factories
from users.models import User
from tests.support import iso, room_data, validation_error

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found."}
ROOM_ADMINS_ONLY = {"code": "FORBIDDEN", "message": "Only the room's owner and admins can do this."}
OWNER_ADDS_ADMINS = {"code": "FORBIDDEN", "message": "Only the room's owner can add admins."}
OWNER_CANNOT_BE_REMOVED = {"code": "FORBIDDEN", "message": "The room's owner cannot be removed."}

# The two forms of an id that every URL path accepts.
ID_FORMS = [pytest.param(str, id="bare"), pytest.param(lambda pk: f"room_{pk}", id="prefixed")]


def room_body(room: Room, viewer: User) -> dict:
    """The room as stored now, in the shape REST answers to `viewer`."""
    return {**room_data(room), "is_member": room.memberships.filter(user=viewer).exists()}


def member_body(membership: Membership) -> dict:
    user = membership.user
    return {
        "user": {
            "id": f"user_{user.pk}",
            "username": user.username,
            "display_name": user.display_name,
            "avatar_url": "",
            "status": "offline",
            "last_seen_at": None,
        },
        "role": membership.role,
        "joined_at": iso(membership.created_at),
    }


def snapshot(room: Room) -> tuple:
    """What a refused write must leave untouched."""
    room = Room.objects.get(pk=room.pk)
    return (room.name, room.topic, room.is_private, room.updated_at)


@pytest.fixture
def staff(db):
    return factories.make_user("root", is_staff=True)


@pytest.fixture
def manager(request, user, other_user, staff):
    """The user acting on `other_user`'s private room as `request.param`: its owner, one of its admins, or staff."""
    room = factories.make_room(other_user, "ops", is_private=True)
    if request.param == "owner":
        return other_user, room
    if request.param == "admin":
        factories.make_admin(room, user)
        return user, room
    return staff, room


MANAGERS = pytest.mark.parametrize("manager", ["owner", "admin", "staff"], indirect=True)


# --- GET /v1/rooms ---------------------------------------------------------------------------


def test_room_list_is_empty_when_no_room_exists(api):
    response = api.get("/v1/rooms")
    assert response.status_code == 200
    assert response.json() == {"results": [], "next": None, "previous": None}


def test_room_list_requires_authentication(anon, db):
    response = anon.get("/v1/rooms")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_room_list_shows_public_rooms_and_my_private_rooms_newest_first(api, user, other_user):
    public = factories.make_room(other_user, "public")
    factories.make_room(other_user, "hidden", is_private=True)
    invited = factories.make_room(other_user, "invited", is_private=True, members=(user,))
    mine = factories.make_room(user, "mine", is_private=True)

    response = api.get("/v1/rooms")

    assert response.status_code == 200
    assert response.json() == {
        "results": [room_body(mine, user), room_body(invited, user), room_body(public, user)],
        "next": None,
        "previous": None,
    }


def test_room_list_shows_every_room_to_staff(client_for, staff, other_user):
    public = factories.make_room(other_user, "public")
    hidden = factories.make_room(other_user, "hidden", is_private=True)

    response = client_for(staff).get("/v1/rooms")

    assert response.status_code == 200
    assert response.json() == {"results": [room_body(hidden, staff), room_body(public, staff)], "next": None, "previous": None}


def test_room_list_counts_members(api, user, other_user, third_user):
    room = factories.make_room(user, members=(other_user, third_user))

    response = api.get("/v1/rooms")

    assert response.status_code == 200
    assert response.json()["results"] == [{**room_body(room, user), "member_count": 3}]


def test_is_member_tells_whether_i_belong_to_each_room(api, user, other_user):
    joined = factories.make_room(other_user, "joined", members=(user,))
    not_joined = factories.make_room(other_user, "not joined")

    response = api.get("/v1/rooms")

    assert [(room["id"], room["is_member"]) for room in response.json()["results"]] == [
        (f"room_{not_joined.pk}", False),
        (f"room_{joined.pk}", True),
    ]


def test_staff_see_is_member_false_for_a_private_room_they_do_not_belong_to(client_for, staff, other_user):
    room = factories.make_room(other_user, is_private=True)

    response = client_for(staff).get(f"/v1/rooms/{room.pk}")

    assert response.json()["is_member"] is False


def test_joining_a_room_makes_is_member_true(api, other_user):
    room = factories.make_room(other_user)
    api.post(f"/v1/rooms/{room.pk}/members", {}, format="json")

    assert api.get(f"/v1/rooms/{room.pk}").json()["is_member"] is True


# --- POST /v1/rooms --------------------------------------------------------------------------


def test_creating_a_room_answers_201_with_the_room(api, user):
    response = api.post("/v1/rooms", {"name": "lobby", "topic": "Say hi"}, format="json")

    assert response.status_code == 201
    room = Room.objects.get()
    assert response.json() == {
        "id": f"room_{room.pk}",
        "name": "lobby",
        "topic": "Say hi",
        "is_private": False,
        "created_by": f"user_{user.pk}",
        "created_at": iso(room.created_at),
        "updated_at": iso(room.updated_at),
        "member_count": 1,
        "is_member": True,
    }
    assert response.json()["created_at"].endswith("Z")
    assert response.json()["updated_at"].endswith("Z")


def test_creating_a_room_makes_the_creator_its_owner(api, user):
    response = api.post("/v1/rooms", {"name": "lobby"}, format="json")

    assert response.status_code == 201
    room = Room.objects.get()
    assert list(room.memberships.values_list("user_id", "role")) == [(user.pk, Membership.Role.OWNER)]


def test_creating_a_private_room(api, user):
    response = api.post("/v1/rooms", {"name": "secret", "is_private": True}, format="json")

    assert response.status_code == 201
    room = Room.objects.get()
    assert room.is_private is True
    assert response.json() == room_body(room, user)


def test_a_new_private_room_is_invisible_to_others(api, client_for, other_user):
    room_id = api.post("/v1/rooms", {"name": "secret", "is_private": True}, format="json").json()["id"]

    response = client_for(other_user).get(f"/v1/rooms/{room_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_creating_a_room_without_a_name_is_rejected(api):
    response = api.post("/v1/rooms", {"topic": "nameless"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(name=["This field is required."])
    assert not Room.objects.exists()


def test_creating_a_room_with_a_blank_name_is_rejected(api):
    response = api.post("/v1/rooms", {"name": "   "}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(name=["This field may not be blank."])
    assert not Room.objects.exists()


def test_creating_a_room_with_a_non_boolean_is_private_is_rejected(api):
    response = api.post("/v1/rooms", {"name": "lobby", "is_private": "yes"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(is_private=["Must be true or false."])
    assert not Room.objects.exists()


def test_creating_a_room_with_an_unknown_field_is_rejected(api):
    response = api.post("/v1/rooms", {"name": "lobby", "owner": "user_1"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(owner=["Unknown field."])
    assert not Room.objects.exists()


# --- GET /v1/rooms/{id} ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_reading_a_public_room_by_either_id_form(api, user, other_user, form):
    room = factories.make_room(other_user)

    response = api.get(f"/v1/rooms/{form(room.pk)}")

    assert response.status_code == 200
    assert response.json() == room_body(room, user)


@pytest.mark.parametrize("form", ID_FORMS)
def test_reading_a_private_room_i_belong_to(api, user, other_user, form):
    room = factories.make_room(other_user, is_private=True, members=(user,))

    response = api.get(f"/v1/rooms/{form(room.pk)}")

    assert response.status_code == 200
    assert response.json() == room_body(room, user)


@pytest.mark.parametrize("form", ID_FORMS)
def test_reading_a_private_room_i_do_not_belong_to_answers_404(api, other_user, form):
    room = factories.make_room(other_user, is_private=True)

    response = api.get(f"/v1/rooms/{form(room.pk)}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_staff_can_read_any_private_room(client_for, staff, other_user):
    room = factories.make_room(other_user, is_private=True)

    response = client_for(staff).get(f"/v1/rooms/{room.pk}")

    assert response.status_code == 200
    assert response.json() == room_body(room, staff)


def test_reading_a_room_that_does_not_exist_answers_404(api, db):
    response = api.get("/v1/rooms/room_987654")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("room_id", ["room_", "room_0", "room_-1", "rm_1", "0", "abc"])
def test_a_malformed_room_id_answers_404(api, room_id):
    response = api.get(f"/v1/rooms/{room_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- PATCH /v1/rooms/{id} --------------------------------------------------------------------


@MANAGERS
@pytest.mark.parametrize("form", ID_FORMS)
def test_owner_admin_and_staff_can_change_a_room(client_for, manager, form):
    actor, room = manager

    response = client_for(actor).patch(
        f"/v1/rooms/{form(room.pk)}", {"name": "renamed", "topic": "new topic"}, format="json"
    )

    assert response.status_code == 200
    room.refresh_from_db()
    assert (room.name, room.topic) == ("renamed", "new topic")
    assert response.json() == room_body(room, actor)


def test_changing_only_the_topic_keeps_the_name(api, user):
    room = factories.make_room(user, "lobby")

    response = api.patch(f"/v1/rooms/{room.pk}", {"topic": "Say hi"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "lobby"
    assert response.json()["topic"] == "Say hi"


def test_owner_can_make_a_room_private(api, user):
    room = factories.make_room(user)

    response = api.patch(f"/v1/rooms/{room.pk}", {"is_private": True}, format="json")

    assert response.status_code == 200
    assert response.json()["is_private"] is True
    assert Room.objects.get(pk=room.pk).is_private is True


def test_a_plain_member_cannot_change_a_room(api, user, other_user):
    room = factories.make_room(other_user, "lobby", members=(user,))
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/{room.pk}", {"name": "hijacked"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert snapshot(room) == before


def test_a_non_member_cannot_change_a_public_room(api, other_user):
    room = factories.make_room(other_user, "lobby")
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/{room.pk}", {"name": "hijacked"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert snapshot(room) == before


def test_changing_a_private_room_i_cannot_see_answers_404(api, other_user):
    room = factories.make_room(other_user, "secret", is_private=True)
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/room_{room.pk}", {"name": "hijacked"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert snapshot(room) == before


def test_changing_a_room_with_an_unknown_field_is_rejected(api, user):
    room = factories.make_room(user, "lobby")
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/{room.pk}", {"name": "renamed", "colour": "red"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(colour=["Unknown field."])
    assert snapshot(room) == before


def test_changing_a_room_name_to_a_number_is_rejected(api, user):
    room = factories.make_room(user, "lobby")
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/{room.pk}", {"name": 5}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(name=["Must be a string."])
    assert snapshot(room) == before


# --- DELETE /v1/rooms/{id} -------------------------------------------------------------------


@MANAGERS
@pytest.mark.parametrize("form", ID_FORMS)
def test_owner_admin_and_staff_can_delete_a_room(client_for, manager, form):
    actor, room = manager
    factories.make_message(room.created_by, room=room)

    response = client_for(actor).delete(f"/v1/rooms/{form(room.pk)}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Room.objects.filter(pk=room.pk).exists()
    assert not Membership.objects.filter(room_id=room.pk).exists()


def test_a_plain_member_cannot_delete_a_room(api, user, other_user):
    room = factories.make_room(other_user, members=(user,))

    response = api.delete(f"/v1/rooms/{room.pk}")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert Room.objects.filter(pk=room.pk).exists()


def test_deleting_a_private_room_i_cannot_see_answers_404(api, other_user):
    room = factories.make_room(other_user, is_private=True)

    response = api.delete(f"/v1/rooms/{room.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Room.objects.filter(pk=room.pk).exists()


# --- GET /v1/rooms/{id}/members --------------------------------------------------------------


def test_listing_the_members_of_a_room(api, user, other_user):
    room = factories.make_room(other_user, members=(user,))
    owner, member = Membership.objects.filter(room=room).order_by("id")

    response = api.get(f"/v1/rooms/room_{room.pk}/members")

    assert response.status_code == 200
    assert response.json() == {"results": [member_body(member), member_body(owner)], "next": None, "previous": None}
    assert [item["role"] for item in response.json()["results"]] == ["member", "owner"]


def test_listing_the_members_of_a_private_room_i_cannot_see_answers_404(api, other_user):
    room = factories.make_room(other_user, is_private=True)

    response = api.get(f"/v1/rooms/{room.pk}/members")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- POST /v1/rooms/{id}/members -------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_joining_a_public_room_yourself(api, user, other_user, form):
    room = factories.make_room(other_user)

    response = api.post(f"/v1/rooms/{form(room.pk)}/members", {}, format="json")

    assert response.status_code == 201
    membership = Membership.objects.get(room=room, user=user)
    assert membership.role == Membership.Role.MEMBER
    assert response.json() == member_body(membership)


def test_joining_a_room_twice_answers_200_and_changes_nothing(api, user, other_user):
    room = factories.make_room(other_user)
    first = api.post(f"/v1/rooms/{room.pk}/members", {}, format="json")

    second = api.post(f"/v1/rooms/{room.pk}/members", {}, format="json")

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == first.json()
    assert Membership.objects.filter(room=room, user=user).count() == 1


def test_joining_a_room_raises_its_member_count(api, other_user):
    room = factories.make_room(other_user)

    api.post(f"/v1/rooms/{room.pk}/members", {}, format="json")

    assert api.get(f"/v1/rooms/{room.pk}").json()["member_count"] == 2


def test_joining_a_private_room_i_cannot_see_answers_404(api, user, other_user):
    room = factories.make_room(other_user, is_private=True)

    response = api.post(f"/v1/rooms/{room.pk}/members", {}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert not Membership.objects.filter(room=room, user=user).exists()


def test_joining_a_public_room_as_admin_yourself_is_forbidden(api, user, other_user):
    room = factories.make_room(other_user)

    response = api.post(f"/v1/rooms/{room.pk}/members", {"role": "admin"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert not Membership.objects.filter(room=room, user=user).exists()


@MANAGERS
@pytest.mark.parametrize(
    "user_id_form",
    [
        pytest.param(lambda pk: f"user_{pk}", id="prefixed"),
        pytest.param(lambda pk: pk, id="integer"),
        pytest.param(str, id="bare-string"),
    ],
)
def test_owner_admin_and_staff_can_add_a_member(client_for, manager, third_user, user_id_form):
    actor, room = manager

    response = client_for(actor).post(
        f"/v1/rooms/{room.pk}/members", {"user_id": user_id_form(third_user.pk)}, format="json"
    )

    assert response.status_code == 201
    membership = Membership.objects.get(room=room, user=third_user)
    assert membership.role == Membership.Role.MEMBER
    assert response.json() == member_body(membership)


def test_adding_someone_who_is_already_a_member_answers_200(api, user, other_user):
    room = factories.make_room(user, members=(other_user,))
    existing = Membership.objects.get(room=room, user=other_user)

    response = api.post(f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{other_user.pk}"}, format="json")

    assert response.status_code == 200
    assert response.json() == member_body(existing)
    assert Membership.objects.filter(room=room, user=other_user).count() == 1


def test_a_plain_member_cannot_add_someone_else(api, user, other_user, third_user):
    room = factories.make_room(other_user, members=(user,))

    response = api.post(f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert not Membership.objects.filter(room=room, user=third_user).exists()


def test_a_non_member_cannot_add_someone_to_a_public_room(api, other_user, third_user):
    room = factories.make_room(other_user)

    response = api.post(f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert not Membership.objects.filter(room=room, user=third_user).exists()


def test_the_owner_can_add_an_admin(api, user, third_user):
    room = factories.make_room(user, is_private=True)

    response = api.post(
        f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}", "role": "admin"}, format="json"
    )

    assert response.status_code == 201
    membership = Membership.objects.get(room=room, user=third_user)
    assert membership.role == Membership.Role.ADMIN
    assert response.json() == member_body(membership)


def test_staff_can_add_an_admin(client_for, staff, other_user, third_user):
    room = factories.make_room(other_user, is_private=True)

    response = client_for(staff).post(
        f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}", "role": "admin"}, format="json"
    )

    assert response.status_code == 201
    assert Membership.objects.get(room=room, user=third_user).role == Membership.Role.ADMIN


def test_an_admin_cannot_add_an_admin(api, user, other_user, third_user):
    room = factories.make_room(other_user)
    factories.make_admin(room, user)

    response = api.post(
        f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}", "role": "admin"}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == OWNER_ADDS_ADMINS
    assert not Membership.objects.filter(room=room, user=third_user).exists()


def test_adding_a_member_as_owner_role_is_rejected(api, user, third_user):
    room = factories.make_room(user)

    response = api.post(
        f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}", "role": "owner"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == validation_error(role=['"owner" is not a valid choice.'])
    assert not Membership.objects.filter(room=room, user=third_user).exists()


def test_adding_a_user_that_does_not_exist_is_rejected(api, user):
    room = factories.make_room(user)

    response = api.post(f"/v1/rooms/{room.pk}/members", {"user_id": "user_987654"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=["No user with id 'user_987654'."])
    assert room.memberships.count() == 1


def test_adding_a_member_with_an_unknown_field_is_rejected(api, user, third_user):
    room = factories.make_room(user)

    response = api.post(
        f"/v1/rooms/{room.pk}/members", {"user_id": f"user_{third_user.pk}", "nick": "cy"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == validation_error(nick=["Unknown field."])
    assert not Membership.objects.filter(room=room, user=third_user).exists()


# --- DELETE /v1/rooms/{id}/members/{user_id} -------------------------------------------------


@pytest.mark.parametrize(
    "user_path", [pytest.param(str, id="bare"), pytest.param(lambda pk: f"user_{pk}", id="prefixed")]
)
def test_leaving_a_room_yourself(api, user, other_user, user_path):
    room = factories.make_room(other_user, members=(user,))

    response = api.delete(f"/v1/rooms/{room.pk}/members/{user_path(user.pk)}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Membership.objects.filter(room=room, user=user).exists()


def test_leaving_a_private_room_hides_it(api, user, other_user):
    room = factories.make_room(other_user, is_private=True, members=(user,))

    api.delete(f"/v1/rooms/{room.pk}/members/{user.pk}")

    assert api.get(f"/v1/rooms/{room.pk}").status_code == 404
    assert api.get("/v1/rooms").json()["results"] == []


@MANAGERS
def test_owner_admin_and_staff_can_remove_a_member(client_for, manager, third_user):
    actor, room = manager
    services.membership_add(room=room, user=third_user)

    response = client_for(actor).delete(f"/v1/rooms/{room.pk}/members/user_{third_user.pk}")

    assert response.status_code == 204
    assert not Membership.objects.filter(room=room, user=third_user).exists()


def test_a_plain_member_cannot_remove_another_member(api, user, other_user, third_user):
    room = factories.make_room(other_user, members=(user, third_user))

    response = api.delete(f"/v1/rooms/{room.pk}/members/{third_user.pk}")

    assert response.status_code == 403
    assert response.json() == ROOM_ADMINS_ONLY
    assert Membership.objects.filter(room=room, user=third_user).exists()


def test_an_admin_cannot_remove_the_owner(api, user, other_user):
    room = factories.make_room(other_user)
    factories.make_admin(room, user)

    response = api.delete(f"/v1/rooms/{room.pk}/members/{other_user.pk}")

    assert response.status_code == 403
    assert response.json() == OWNER_CANNOT_BE_REMOVED
    assert Membership.objects.get(room=room, user=other_user).role == Membership.Role.OWNER


def test_removing_a_member_of_a_private_room_i_cannot_see_answers_404(api, other_user, third_user):
    room = factories.make_room(other_user, is_private=True, members=(third_user,))

    response = api.delete(f"/v1/rooms/{room.pk}/members/{third_user.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Membership.objects.filter(room=room, user=third_user).exists()


def test_removing_someone_who_is_not_a_member_answers_404(api, user, third_user):
    room = factories.make_room(user)

    response = api.delete(f"/v1/rooms/{room.pk}/members/{third_user.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_leaving_a_room_i_am_not_in_answers_404(api, user, other_user):
    room = factories.make_room(other_user)

    response = api.delete(f"/v1/rooms/{room.pk}/members/{user.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- text rules for names and topics ------------------------------------------------------------

BLANK = "This field may not be blank."
NAME_CONTROL = "Line breaks and control characters are not allowed."
CONTROL = "Control characters are not allowed."
BIDI = "Bidirectional override and isolate characters are not allowed."


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"name": "\u3164"}, {"name": [BLANK]}),
        ({"name": "\u200b\u2060\ufeff"}, {"name": [BLANK]}),
        ({"name": "two\nlines"}, {"name": [NAME_CONTROL]}),
        ({"name": "tab\there"}, {"name": [NAME_CONTROL]}),
        ({"name": "esc\x1b[31m"}, {"name": [NAME_CONTROL]}),
        ({"name": "c1\x9b"}, {"name": [NAME_CONTROL]}),
        ({"name": "gen\u202eral"}, {"name": [BIDI]}),
        ({"name": "a\u2066b\u2069"}, {"name": [BIDI]}),
        ({"name": "lobby", "topic": "esc\x1b[2J"}, {"topic": [CONTROL]}),
        ({"name": "lobby", "topic": "a\x85b"}, {"topic": [CONTROL]}),
        ({"name": "lobby", "topic": "a\u202db"}, {"topic": [BIDI]}),
    ],
    ids=[
        "name-hangul-filler", "name-zero-width-only", "name-newline", "name-tab", "name-escape", "name-c1",
        "name-rlo", "name-isolate", "topic-escape", "topic-c1", "topic-lro",
    ],
)
def test_creating_a_room_rejects_invisible_control_and_bidi_characters(api, body, details):
    response = api.post("/v1/rooms", body, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(**details)
    assert not Room.objects.exists()


def test_a_topic_may_span_lines(api):
    response = api.post("/v1/rooms", {"name": "lobby", "topic": "rules:\n1. be kind\t!"}, format="json")

    assert response.status_code == 201
    assert Room.objects.get().topic == "rules:\n1. be kind\t!"


def test_renaming_a_room_to_invisible_characters_only_is_rejected(api, user):
    room = factories.make_room(user, "lobby")
    before = snapshot(room)

    response = api.patch(f"/v1/rooms/{room.pk}", {"name": "\u2800"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(name=[BLANK])
    assert snapshot(room) == before
