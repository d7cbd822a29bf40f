"""Management commands that operators and `make run` rely on."""
import io
import re

import pytest
from django.core.management import CommandError, call_command

from realtime import publish
from rooms.models import Conversation, Message, Room
from users import services as user_services
from tests.openapi import SchemaCheckedClient
from tests.support import capture_published
from users.models import ApiKey, User

KEY_FORMAT = re.compile(r"rc_[A-Za-z0-9_-]{32,}")

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def me_as(key: str):
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/v1/users/me")


def printed_keys(output: str) -> list[str]:
    return KEY_FORMAT.findall(output)


# --- createapikey ------------------------------------------------------------------------------


def test_createapikey_prints_the_key_alone_on_the_last_line(user):
    stdout, _ = run("createapikey", "ada")

    last_line = stdout.splitlines()[-1]
    assert KEY_FORMAT.fullmatch(last_line), stdout
    assert printed_keys(stdout) == [last_line]


def test_createapikey_key_authenticates_as_the_user(user):
    stdout, _ = run("createapikey", "ada")

    response = me_as(stdout.splitlines()[-1])

    assert response.status_code == 200
    assert response.json()["id"] == f"user_{user.pk}"


def test_createapikey_with_create_user_creates_the_user_and_a_named_key(db):
    stdout, _ = run("createapikey", "newbie", "--create-user", "--name", "ci")

    newbie = User.objects.get(username="newbie")
    key = stdout.splitlines()[-1]
    assert KEY_FORMAT.fullmatch(key), stdout
    api_key = ApiKey.objects.get(user=newbie)
    assert api_key.name == "ci"
    assert api_key.prefix == key[:11]
    response = me_as(key)
    assert response.status_code == 200
    assert response.json()["id"] == f"user_{newbie.pk}"
    assert response.json()["username"] == "newbie"


def test_createapikey_with_create_user_reuses_an_existing_user(user):
    run("createapikey", "ada", "--create-user")

    assert User.objects.filter(username="ada").count() == 1
    assert ApiKey.objects.filter(user=user).count() == 1


def test_createapikey_for_an_unknown_user_fails_without_create_user(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("createapikey", "ghost")

    assert not User.objects.filter(username="ghost").exists()
    assert not ApiKey.objects.exists()


def test_createapikey_for_an_inactive_user_fails(user):
    user.is_active = False
    user.save(update_fields=["is_active"])

    with pytest.raises(CommandError, match="inactive"):
        run("createapikey", "ada")

    assert not ApiKey.objects.filter(user=user).exists()


def test_createapikey_never_prints_the_key_on_stderr(user):
    stdout, stderr = run("createapikey", "ada")

    assert stdout.splitlines()[-1] not in stderr
    assert printed_keys(stderr) == []


# --- demo --------------------------------------------------------------------------------------


def test_demo_on_an_empty_database_creates_users_and_a_room(db):
    run("demo")

    demo = User.objects.get(username="demo")
    alice = User.objects.get(username="alice")
    bob = User.objects.get(username="bob")
    room = Room.objects.get(name="general")
    assert set(room.members.all()) == {demo, alice, bob}
    assert Message.objects.filter(room=room).exists()
    assert [conversation.participant_ids for conversation in Conversation.objects.all()] == [(demo.pk, alice.pk)]


def test_demo_prints_a_key_that_authenticates_as_demo(db):
    stdout, _ = run("demo")

    keys = set(printed_keys(stdout))
    assert len(keys) == 1, stdout
    response = me_as(keys.pop())
    assert response.status_code == 200
    assert response.json()["username"] == "demo"


def test_demo_run_twice_creates_no_second_room(db):
    first_stdout, _ = run("demo")

    second_stdout, _ = run("demo")

    assert Room.objects.count() == 1
    assert User.objects.count() == 3
    assert Conversation.objects.count() == 1
    (first_key,) = set(printed_keys(first_stdout))
    (second_key,) = set(printed_keys(second_stdout))
    assert first_key != second_key
    assert me_as(second_key).status_code == 200


def test_demo_revokes_the_key_printed_by_the_previous_run(db):
    (first_key,) = set(printed_keys(run("demo")[0]))

    (second_key,) = set(printed_keys(run("demo")[0]))

    assert me_as(first_key).status_code == 401
    assert me_as(second_key).status_code == 200
    demo_keys = ApiKey.objects.filter(user__username="demo").order_by("id")
    assert [(key.name, key.revoked_at is not None) for key in demo_keys] == [("make run", True), ("make run", False)]


def test_demo_revocation_closes_the_previous_keys_sockets(db, monkeypatch, django_capture_on_commit_callbacks):
    run("demo")
    previous = ApiKey.objects.get(user__username="demo")
    sent = capture_published(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        run("demo")

    assert [(group, message["control"]) for group, message in sent] == [
        (publish.CONTROL_GROUP, {"action": "revoke_key", "key_id": previous.pk})
    ]


def test_demo_keeps_the_demo_users_other_keys(db):
    run("demo")
    _, bot_key = user_services.api_key_create(user=User.objects.get(username="demo"), name="bot")

    run("demo")

    assert me_as(bot_key).status_code == 200


def test_demo_does_not_seed_a_database_that_has_users(user):
    stdout, _ = run("demo")

    assert not Room.objects.exists()
    assert not User.objects.filter(username="demo").exists()
    assert printed_keys(stdout) == []


def test_demo_room_in_the_printed_commands_is_the_demo_room(db):
    stdout, _ = run("demo")

    room = Room.objects.get(name="general")
    assert f"/v1/rooms/{room.pk}/messages" in stdout
    assert f'"channel": "room:{room.pk}"' in stdout

