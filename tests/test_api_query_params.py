"""REST: list endpoints answer 400 for a query parameter they do not know, instead of ignoring it."""
import pytest

from tests import factories

pytestmark = pytest.mark.django_db

LISTS = [
    "/v1/rooms",
    "/v1/rooms/{room}/members",
    "/v1/rooms/{room}/messages",
    "/v1/conversations",
    "/v1/conversations/{conversation}/messages",
    "/v1/api-keys",
]


@pytest.fixture
def urls(user, other_user):
    room = factories.make_room(user)
    conversation = factories.make_conversation(user, other_user)
    return {path: path.format(room=room.pk, conversation=conversation.pk) for path in LISTS}


@pytest.mark.parametrize("path", LISTS)
def test_an_unknown_query_parameter_is_rejected_with_its_name(api, urls, path):
    response = api.get(urls[path], {"page": "2", "ordering": "id"})

    assert response.status_code == 400
    assert response.json() == {
        "code": "VALIDATION_ERROR",
        "message": "The request is not valid; see details.",
        "details": {"ordering": ["Unknown query parameter."], "page": ["Unknown query parameter."]},
    }


@pytest.mark.parametrize("path", LISTS)
def test_limit_cursor_and_format_are_known_everywhere(api, urls, path):
    response = api.get(urls[path], {"limit": "5", "format": "json"})

    assert response.status_code == 200


def test_authentication_is_checked_before_query_parameters(anon, db):
    response = anon.get("/v1/rooms", {"page": "2"})

    assert response.status_code == 401


def test_after_is_known_only_to_message_history(api, db):
    response = api.get("/v1/rooms", {"after": "msg_1"})

    assert response.status_code == 400
    assert response.json()["details"] == {"after": ["Unknown query parameter."]}


def test_a_write_ignores_query_parameters(api, db):
    response = api.post("/v1/rooms?utm_source=docs", {"name": "lobby"}, format="json")

    assert response.status_code == 201
