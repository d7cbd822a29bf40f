"""The OpenAPI document (/v1/schema) and the check that holds every REST test's responses to it."""
import json

import pytest
from django.core.management import call_command
from django.http import HttpResponse, JsonResponse

from tests import factories
from tests.openapi import check_response

pytestmark = pytest.mark.django_db

A_TIMESTAMP = "2026-01-02T03:04:05.123456Z"


@pytest.fixture
def document(anon):
    response = anon.get("/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def message(**changes: object) -> dict:
    return {
        "id": "msg_1", "room_id": "room_1", "user_id": "user_1", "content": "hi",
        "created_at": A_TIMESTAMP, "updated_at": A_TIMESTAMP, "edited_at": None, **changes,
    }


def test_a_message_requires_neither_room_id_nor_conversation_id(document):
    required = document["components"]["schemas"]["Message"]["required"]

    assert sorted(required) == ["content", "created_at", "edited_at", "id", "updated_at", "user_id"]


@pytest.mark.parametrize(
    "schema, field, example",
    [
        ("Message", "id", "msg_7"),
        ("Message", "room_id", "room_7"),
        ("Message", "conversation_id", "conv_7"),
        ("Message", "user_id", "user_7"),
        ("Room", "id", "room_7"),
        ("Room", "created_by", "user_7"),
        ("Conversation", "id", "conv_7"),
        ("User", "id", "user_7"),
        ("ApiKey", "id", "key_7"),
    ],
)
def test_each_id_is_documented_with_its_own_prefix(document, schema, field, example):
    assert document["components"]["schemas"][schema]["properties"][field]["example"] == example


@pytest.mark.parametrize(
    "schema, field",
    [("Message", "edited_at"), ("User", "last_seen_at"), ("Room", "created_by"), ("ApiKey", "expires_at"), ("ApiKey", "last_used_at")],
)
def test_fields_that_may_be_null_are_nullable(document, schema, field):
    assert document["components"]["schemas"][schema]["properties"][field]["nullable"] is True


def test_every_authenticated_operation_documents_401_with_the_error_body(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/health"):
                continue
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, f"{method} {path}"


def test_writes_document_throttling(document):
    assert sorted(document["paths"]["/v1/rooms"]["post"]["responses"]) == ["201", "400", "401", "403", "413", "415", "429", "503"]


def test_a_response_as_documented_passes(db):
    check_response("GET", "/v1/messages/msg_1", JsonResponse(message()))


def test_an_undocumented_status_fails(db):
    with pytest.raises(AssertionError, match="answered 418, which the OpenAPI document does not list"):
        check_response("GET", "/v1/rooms", HttpResponse(status=418))


def test_an_undocumented_field_fails(db):
    with pytest.raises(AssertionError, match="Additional properties are not allowed"):
        check_response("GET", "/v1/messages/1", JsonResponse(message(secret="x")))


def test_a_missing_field_fails(db):
    body = message()
    del body["edited_at"]

    with pytest.raises(AssertionError, match="'edited_at' is a required property"):
        check_response("GET", "/v1/messages/1", JsonResponse(body))


def test_a_timestamp_without_z_fails(db):
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        check_response("GET", "/v1/messages/1", JsonResponse(message(created_at="2026-01-02T03:04:05+00:00")))


def test_an_error_body_of_another_shape_fails(db):
    with pytest.raises(AssertionError, match="'code' is a required property"):
        check_response("GET", "/v1/messages/1", JsonResponse({"detail": "Not found."}, status=404))


def test_undocumented_paths_are_not_checked(db):
    check_response("GET", "/v1/nothing-here", HttpResponse(status=418))


def test_the_suite_clients_check_what_they_receive(api, user, monkeypatch):
    from rooms.api import serializers

    monkeypatch.setattr(serializers.RoomSerializer, "get_is_member", lambda self, room: "yes")
    factories.make_room(user)

    with pytest.raises(AssertionError, match="'yes' is not of type 'boolean'"):
        api.get("/v1/rooms")


def test_the_schema_generates_without_warnings(capsys):
    """drf-spectacular warns about what it had to guess (an unnamed enum, an untyped field): the
    document holds none of those guesses."""
    call_command("spectacular", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err
