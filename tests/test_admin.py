"""The Django admin manages users, keys (revoke, never reveal), rooms, memberships, conversations
and messages."""
from dataclasses import dataclass

import pytest
from django.test import Client

from rooms.models import Membership
from tests import factories
from tests.openapi import SchemaCheckedClient
from users.models import ApiKey, User

pytestmark = pytest.mark.django_db


@dataclass
class World:
    ada: User
    bob: User
    ada_key: str
    bob_key: str
    objects: dict


@pytest.fixture
def superuser() -> User:
    return factories.make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(superuser: User) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def world(user: User, other_user: User) -> World:
    ada_key = factories.make_key(user, name="ada laptop")
    bob_key = factories.make_key(other_user, name="bob ci")
    room = factories.make_room(user, "general", members=(other_user,))
    conversation = factories.make_conversation(user, other_user)
    room_message = factories.make_message(user, room=room, content="hello room")
    factories.make_message(other_user, conversation=conversation, content="hello bob")
    return World(
        ada=user,
        bob=other_user,
        ada_key=ada_key,
        bob_key=bob_key,
        objects={
            "users/user": user,
            "users/apikey": ApiKey.objects.get(user=user),
            "rooms/room": room,
            "rooms/membership": Membership.objects.get(room=room, user=other_user),
            "rooms/conversation": conversation,
            "rooms/message": room_message,
        },
    )


def bearer_status(key: str) -> int:
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/v1/users/me").status_code


MODELS = ["users/user", "users/apikey", "rooms/room", "rooms/membership", "rooms/conversation", "rooms/message"]


@pytest.mark.parametrize("model", MODELS)
def test_changelist_loads_without_revealing_keys(admin_client, world, model):
    response = admin_client.get(f"/admin/{model}/")

    assert response.status_code == 200
    assert world.ada_key.encode() not in response.content
    assert world.bob_key.encode() not in response.content


@pytest.mark.parametrize("model", MODELS)
def test_change_page_loads_without_revealing_keys(admin_client, world, model):
    obj = world.objects[model]

    response = admin_client.get(f"/admin/{model}/{obj.pk}/change/")

    assert response.status_code == 200
    assert world.ada_key.encode() not in response.content
    assert world.bob_key.encode() not in response.content


def test_api_key_change_page_does_not_show_the_stored_hash(admin_client, world):
    api_key = world.objects["users/apikey"]

    response = admin_client.get(f"/admin/users/apikey/{api_key.pk}/change/")

    assert response.status_code == 200
    assert api_key.prefix.encode() in response.content
    assert api_key.hashed_key.encode() not in response.content


def test_api_key_changelist_shows_the_prefix(admin_client, world):
    response = admin_client.get("/admin/users/apikey/")

    assert response.status_code == 200
    assert world.ada_key[:11].encode() in response.content


def test_api_keys_cannot_be_added_in_the_admin(admin_client):
    response = admin_client.get("/admin/users/apikey/add/")

    assert response.status_code == 403


def test_revoke_action_revokes_the_selected_keys(admin_client, world):
    ada_key = ApiKey.objects.get(user=world.ada)

    response = admin_client.post(
        "/admin/users/apikey/", {"action": "revoke", "_selected_action": [ada_key.pk]}, follow=True
    )

    assert response.status_code == 200
    assert b"Revoked 1 API key(s)." in response.content
    ada_key.refresh_from_db()
    assert ada_key.revoked_at is not None
    assert bearer_status(world.ada_key) == 401
    assert bearer_status(world.bob_key) == 200


def test_revoke_action_leaves_an_already_revoked_key_as_it_was(admin_client, world):
    ada_key = ApiKey.objects.get(user=world.ada)
    admin_client.post("/admin/users/apikey/", {"action": "revoke", "_selected_action": [ada_key.pk]})
    ada_key.refresh_from_db()
    first_revocation = ada_key.revoked_at

    response = admin_client.post(
        "/admin/users/apikey/", {"action": "revoke", "_selected_action": [ada_key.pk]}, follow=True
    )

    assert b"Revoked 0 API key(s)." in response.content
    ada_key.refresh_from_db()
    assert ada_key.revoked_at == first_revocation


def test_searching_rooms_by_name(admin_client, user):
    general = factories.make_room(user, "general")
    random = factories.make_room(user, "random")

    response = admin_client.get("/admin/rooms/room/", {"q": "gener"})

    assert response.status_code == 200
    assert f"/admin/rooms/room/{general.pk}/change/".encode() in response.content
    assert f"/admin/rooms/room/{random.pk}/change/".encode() not in response.content


def test_admin_requires_a_staff_login(user):
    client = Client()
    client.force_login(user)

    response = client.get("/admin/users/apikey/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
