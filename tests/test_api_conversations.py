"""REST: direct conversations and their messages."""

import pytest

from rooms.models import Conversation, Message
from tests import factories
from tests.support import iso, message_data, validation_error

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found."}
MALFORMED_USER_ID = "Not a valid user id; expected 'user_12' or a positive integer."


def conversation_body(conversation: Conversation) -> dict:
    low, high = sorted([conversation.user_low_id, conversation.user_high_id])
    return {
        "id": f"conv_{conversation.pk}",
        "participants": [f"user_{low}", f"user_{high}"],
        "created_at": iso(conversation.created_at),
    }


@pytest.fixture
def conversation(user, other_user):
    return factories.make_conversation(user, other_user)


# --- POST /v1/conversations ------------------------------------------------------------------


def test_starting_a_conversation_answers_201_with_it(api, user, other_user):
    response = api.post("/v1/conversations", {"user_id": f"user_{other_user.pk}"}, format="json")

    assert response.status_code == 201
    conversation = Conversation.objects.get()
    assert response.json() == {
        "id": f"conv_{conversation.pk}",
        "participants": [f"user_{user.pk}", f"user_{other_user.pk}"],
        "created_at": iso(conversation.created_at),
    }
    assert response.json()["created_at"].endswith("Z")


@pytest.mark.parametrize("asker", ["starter", "other"])
@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda pk: f"user_{pk}", id="prefixed"),
        pytest.param(lambda pk: pk, id="integer"),
        pytest.param(str, id="bare-string"),
    ],
)
def test_starting_it_again_from_either_side_answers_200_with_the_same_conversation(
    client_for, user, other_user, asker, form
):
    first = client_for(user).post("/v1/conversations", {"user_id": f"user_{other_user.pk}"}, format="json")
    me, them = (user, other_user) if asker == "starter" else (other_user, user)

    again = client_for(me).post("/v1/conversations", {"user_id": form(them.pk)}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Conversation.objects.count() == 1


def test_a_conversation_with_yourself_is_rejected(api, user):
    response = api.post("/v1/conversations", {"user_id": f"user_{user.pk}"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=["You cannot start a conversation with yourself."])
    assert not Conversation.objects.exists()


def test_a_conversation_with_an_unknown_user_is_rejected(api, user):
    response = api.post("/v1/conversations", {"user_id": "user_987654"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=["No user with id 'user_987654'."])
    assert not Conversation.objects.exists()


def test_a_conversation_with_a_deactivated_user_is_rejected(api, user):
    gone = factories.make_user("gone", is_active=False)

    response = api.post("/v1/conversations", {"user_id": f"user_{gone.pk}"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=[f"No user with id 'user_{gone.pk}'."])
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "user_id",
    ["usr_3", "user_", "user_-1", "user_0", "user_03", "abc", " 3", "３", 0, -1, 3.5, True, False, [3], {"id": 3}],
)
def test_a_malformed_user_id_is_rejected(api, other_user, user_id):
    response = api.post("/v1/conversations", {"user_id": user_id}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=[MALFORMED_USER_ID])
    assert not Conversation.objects.exists()


def test_an_empty_user_id_is_rejected(api, other_user):
    response = api.post("/v1/conversations", {"user_id": ""}, format="json")

    assert response.status_code == 400
    # DRF reads "" as null for a related field; only the status and the field in error matter here.
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert list(response.json()["details"]) == ["user_id"]
    assert not Conversation.objects.exists()


def test_a_null_user_id_is_rejected(api, other_user):
    response = api.post("/v1/conversations", {"user_id": None}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=["This field may not be null."])
    assert not Conversation.objects.exists()


def test_a_missing_user_id_is_rejected(api, other_user):
    response = api.post("/v1/conversations", {}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(user_id=["This field is required."])
    assert not Conversation.objects.exists()


def test_an_unknown_field_is_rejected(api, other_user):
    response = api.post("/v1/conversations", {"user_id": f"user_{other_user.pk}", "topic": "hi"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(topic=["Unknown field."])
    assert not Conversation.objects.exists()


# --- GET /v1/conversations -------------------------------------------------------------------


def test_the_list_holds_only_my_conversations_newest_first(api, user, other_user, third_user):
    with_bob = factories.make_conversation(user, other_user)
    factories.make_conversation(other_user, third_user)
    with_cy = factories.make_conversation(third_user, user)

    response = api.get("/v1/conversations")

    assert response.status_code == 200
    assert response.json() == {
        "results": [conversation_body(with_cy), conversation_body(with_bob)],
        "next": None,
        "previous": None,
    }


def test_the_list_is_empty_without_conversations(api, other_user, third_user):
    factories.make_conversation(other_user, third_user)

    response = api.get("/v1/conversations")

    assert response.status_code == 200
    assert response.json() == {"results": [], "next": None, "previous": None}


# --- GET /v1/conversations/{id} --------------------------------------------------------------


@pytest.mark.parametrize("reader", ["starter", "other"])
@pytest.mark.parametrize("form", [pytest.param(str, id="bare"), pytest.param(lambda pk: f"conv_{pk}", id="prefixed")])
def test_both_participants_read_the_conversation(client_for, user, other_user, conversation, reader, form):
    response = client_for(user if reader == "starter" else other_user).get(f"/v1/conversations/{form(conversation.pk)}")

    assert response.status_code == 200
    assert response.json() == conversation_body(conversation)


def test_a_third_user_cannot_read_the_conversation(client_for, third_user, conversation):
    response = client_for(third_user).get(f"/v1/conversations/conv_{conversation.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_reading_a_conversation_that_does_not_exist_answers_404(api, db):
    response = api.get("/v1/conversations/987654")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- GET/POST /v1/conversations/{id}/messages ------------------------------------------------


def test_a_participant_sends_a_message(api, user, conversation):
    response = api.post(f"/v1/conversations/{conversation.pk}/messages", {"content": " Hi Bob! "}, format="json")

    assert response.status_code == 201
    message = Message.objects.get()
    assert (message.conversation_id, message.room_id, message.content) == (conversation.pk, None, "Hi Bob!")
    assert response.json() == {
        "id": f"msg_{message.pk}",
        "conversation_id": f"conv_{conversation.pk}",
        "user_id": f"user_{user.pk}",
        "content": "Hi Bob!",
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
        "edited_at": None,
    }


def test_a_conversation_message_has_no_room_id(api, conversation):
    response = api.post(f"/v1/conversations/conv_{conversation.pk}/messages", {"content": "hi"}, format="json")

    assert response.status_code == 201
    assert "room_id" not in response.json()


def test_the_other_participant_reads_the_history_newest_first(client_for, user, other_user, conversation):
    first = factories.make_message(user, conversation=conversation, content="hi")
    reply = factories.make_message(other_user, conversation=conversation, content="hello")

    response = client_for(other_user).get(f"/v1/conversations/{conversation.pk}/messages")

    assert response.status_code == 200
    assert response.json() == {"results": [message_data(reply), message_data(first)], "next": None, "previous": None}


def test_a_third_user_cannot_read_the_messages(client_for, user, third_user, conversation):
    factories.make_message(user, conversation=conversation)

    response = client_for(third_user).get(f"/v1/conversations/{conversation.pk}/messages")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_third_user_cannot_send_a_message(client_for, third_user, conversation):
    response = client_for(third_user).post(
        f"/v1/conversations/{conversation.pk}/messages", {"content": "intruding"}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert not Message.objects.exists()


def test_a_blank_direct_message_is_rejected(api, conversation):
    response = api.post(f"/v1/conversations/{conversation.pk}/messages", {"content": "  "}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(content=["This field may not be blank."])
    assert not Message.objects.exists()


# --- /v1/messages/{id} for a direct message --------------------------------------------------


def test_a_participant_reads_a_direct_message(client_for, user, other_user, conversation):
    message = factories.make_message(user, conversation=conversation)

    response = client_for(other_user).get(f"/v1/messages/msg_{message.pk}")

    assert response.status_code == 200
    assert response.json() == message_data(message)


def test_a_third_user_cannot_read_a_direct_message(client_for, user, third_user, conversation):
    message = factories.make_message(user, conversation=conversation)

    response = client_for(third_user).get(f"/v1/messages/{message.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_third_user_cannot_edit_or_delete_a_direct_message(client_for, user, third_user, conversation):
    message = factories.make_message(user, conversation=conversation, content="private")
    intruder = client_for(third_user)

    edit = intruder.patch(f"/v1/messages/{message.pk}", {"content": "leaked"}, format="json")
    delete = intruder.delete(f"/v1/messages/{message.pk}")

    assert (edit.status_code, edit.json()) == (404, NOT_FOUND)
    assert (delete.status_code, delete.json()) == (404, NOT_FOUND)
    assert Message.objects.get(pk=message.pk).content == "private"


def test_the_author_edits_a_direct_message(api, user, conversation):
    message = factories.make_message(user, conversation=conversation, content="typo")

    response = api.patch(f"/v1/messages/{message.pk}", {"content": "fixed"}, format="json")

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).content == "fixed"
    assert response.json() == message_data(message)


def test_the_other_participant_cannot_edit_a_direct_message(client_for, user, other_user, conversation):
    message = factories.make_message(user, conversation=conversation, content="mine")

    response = client_for(other_user).patch(f"/v1/messages/{message.pk}", {"content": "theirs"}, format="json")

    assert response.status_code == 403
    assert response.json() == {"code": "FORBIDDEN", "message": "Only the author can edit a message."}
    assert Message.objects.get(pk=message.pk).content == "mine"


def test_the_other_participant_cannot_delete_a_direct_message(client_for, user, other_user, conversation):
    message = factories.make_message(user, conversation=conversation)

    response = client_for(other_user).delete(f"/v1/messages/{message.pk}")

    assert response.status_code == 403
    assert response.json() == {
        "code": "FORBIDDEN",
        "message": "Only the author, the room's owner and admins can delete this message.",
    }
    assert Message.objects.filter(pk=message.pk).exists()


def test_the_author_deletes_a_direct_message(api, user, conversation):
    message = factories.make_message(user, conversation=conversation)

    response = api.delete(f"/v1/messages/{message.pk}")

    assert response.status_code == 204
    assert not Message.objects.filter(pk=message.pk).exists()


def test_after_catches_up_on_a_conversation_oldest_first(api, user, other_user, conversation):
    seen, *later = [factories.make_message(author, conversation=conversation) for author in (user, other_user, user)]

    response = api.get(f"/v1/conversations/{conversation.pk}/messages", {"after": f"msg_{seen.pk}"})

    assert response.status_code == 200
    assert response.json() == {"results": [message_data(m) for m in later], "next": None, "previous": None}


@pytest.mark.django_db(transaction=True)
def test_both_participants_starting_it_at_once_make_one_conversation_and_one_event_each():
    import threading

    from django.db import connection
    from rest_framework.test import APIClient

    from realtime.models import StreamEvent

    for round in range(5):
        ada, bob = factories.make_user(f"ada{round}"), factories.make_user(f"bob{round}")
        barrier = threading.Barrier(2)
        answers: list[tuple[int, object]] = []

        def start(me, other):
            try:
                client = APIClient()
                client.force_authenticate(me)
                barrier.wait(5)
                response = client.post("/v1/conversations", {"user_id": f"user_{other.pk}"}, format="json")
                answers.append((response.status_code, response.json()))
            finally:
                connection.close()

        threads = [threading.Thread(target=start, args=pair) for pair in ((ada, bob), (bob, ada))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        conversation = Conversation.objects.get(user_low=ada, user_high=bob)
        assert sorted(status for status, _ in answers) == [200, 201]
        assert [body["id"] for _, body in answers] == [f"conv_{conversation.pk}"] * 2
        created = StreamEvent.objects.filter(type="conversation:created").filter(channel__in=[f"user:{ada.pk}", f"user:{bob.pk}"])
        assert sorted(created.values_list("channel", flat=True)) == sorted([f"user:{ada.pk}", f"user:{bob.pk}"])
