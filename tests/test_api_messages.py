"""REST: room message history, posting, and single messages."""
import base64

import pytest

from rooms import services
from rooms.api.serializers import MessageSerializer
from rooms.models import Conversation, Message, Room
from tests import factories
from tests.support import iso, message_data, validation_error

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found."}
JOIN_TO_POST = {"code": "FORBIDDEN", "message": "Join the room to post in it."}
AUTHOR_ONLY = {"code": "FORBIDDEN", "message": "Only the author can edit a message."}
CANNOT_DELETE = {
    "code": "FORBIDDEN",
    "message": "Only the author, the room's owner and admins can delete this message.",
}
BAD_LIMIT = ["Must be an integer from 1 to 100."]

ID_FORMS = [pytest.param(str, id="bare"), pytest.param(None, id="prefixed")]


def in_form(form, prefix: str, pk: int) -> str:
    return form(pk) if form else f"{prefix}_{pk}"


def b64(text: str) -> str:
    """A cursor crafted by hand, encoded the way DRF encodes its own."""
    return base64.b64encode(text.encode()).decode()


def page(*messages: Message) -> dict:
    return {"results": [message_data(m) for m in messages], "next": None, "previous": None}


@pytest.fixture
def staff(db):
    return factories.make_user("root", is_staff=True)


@pytest.fixture
def room(user, other_user):
    """A public room owned by `other_user`, with `user` as a plain member."""
    return factories.make_room(other_user, "lobby", members=(user,))


@pytest.fixture
def private_room(other_user):
    """A private room owned by `other_user` that `user` does not belong to."""
    return factories.make_room(other_user, "secret", is_private=True)


def post(client, room, content: object = "hello"):
    return client.post(f"/v1/rooms/{room.pk}/messages", {"content": content}, format="json")


# --- POST /v1/rooms/{id}/messages ------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_a_member_posts_a_message(api, user, room, form):
    response = api.post(f"/v1/rooms/{in_form(form, 'room', room.pk)}/messages", {"content": "Hello!"}, format="json")

    assert response.status_code == 201
    message = Message.objects.get()
    assert (message.room_id, message.author_id, message.content) == (room.pk, user.pk, "Hello!")
    assert response.json() == {
        "id": f"msg_{message.pk}",
        "room_id": f"room_{room.pk}",
        "user_id": f"user_{user.pk}",
        "content": "Hello!",
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
        "edited_at": None,
    }


def test_a_room_message_has_no_conversation_id(api, room):
    response = post(api, room)

    assert response.status_code == 201
    assert "conversation_id" not in response.json()


def test_a_new_message_is_not_edited(api, room):
    body = post(api, room).json()

    assert body["edited_at"] is None


def test_message_timestamps_are_utc_with_a_z(api, room):
    body = post(api, room).json()

    assert body["created_at"].endswith("Z")
    assert body["updated_at"].endswith("Z")


@pytest.mark.parametrize("where", ["room", "conversation", "edited"])
def test_the_message_rendering_equals_drfs_rendering_of_the_declared_fields(user, other_user, room, where):
    """MessageSerializer renders messages by hand for speed; the declared fields (the OpenAPI schema) must agree."""
    if where == "conversation":
        conversation, _ = services.conversation_get_or_create(user=user, other=other_user)
        message = services.message_create(author=user, conversation=conversation, content="hi")
    else:
        message = services.message_create(author=user, room=room, content="hi")
    if where == "edited":
        message = services.message_update(message=message, content="hi again")
    serializer = MessageSerializer()

    assert list(serializer.to_representation(message).items()) == list(serializer.generic_representation(message).items())


def test_a_member_of_a_private_room_posts_a_message(api, user, other_user):
    room = factories.make_room(other_user, is_private=True, members=(user,))

    response = post(api, room)

    assert response.status_code == 201
    assert response.json() == message_data(Message.objects.get())


def test_the_server_never_renders_html(api, room):
    response = post(api, room, "<b>bold</b> & <script>x</script>")

    assert response.status_code == 201
    assert response.json()["content"] == "<b>bold</b> & <script>x</script>"


def test_a_non_member_cannot_post_in_a_public_room(api, other_user):
    room = factories.make_room(other_user)

    response = post(api, room)

    assert response.status_code == 403
    assert response.json() == JOIN_TO_POST
    assert not Message.objects.exists()


def test_posting_in_a_private_room_i_cannot_see_answers_404(api, private_room):
    response = post(api, private_room)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert not Message.objects.exists()


def test_posting_in_a_room_that_does_not_exist_answers_404(api, db):
    response = api.post("/v1/rooms/987654/messages", {"content": "hi"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_posting_in_a_room_deleted_after_the_view_loaded_it_answers_404(api, room, monkeypatch):
    # The view loads the room and the membership outside the write's transaction; the room's delete
    # commits in between. The write checks the room again, under a lock that a delete waits for.
    from rooms import access

    membership_of = access.membership_of

    def then_deleted(user, room):
        membership = membership_of(user, room)
        services.room_delete(room=Room.objects.get(pk=room.pk))
        return membership

    monkeypatch.setattr(access, "membership_of", then_deleted)

    response = post(api, room)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert not Message.objects.exists()


def test_posting_in_a_conversation_deleted_after_the_view_loaded_it_answers_404(api, user, monkeypatch):
    from rooms.api import views

    conversation = factories.make_conversation(user, factories.make_user("bob"))
    get_own_conversation = views.get_own_conversation

    def then_deleted(request, conv_id):
        loaded = get_own_conversation(request, conv_id)
        Conversation.objects.get(pk=loaded.pk).delete()  # the admin, or a participant's account deleted
        return loaded

    monkeypatch.setattr(views, "get_own_conversation", then_deleted)

    response = api.post(f"/v1/conversations/conv_{conversation.pk}/messages", {"content": "hi"}, format="json")

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert not Message.objects.exists()


def _admin_delete_selected(model, row):
    """The admin's "delete selected" action on one row, as the admin runs it."""
    from django.contrib import admin
    from django.db import transaction

    with transaction.atomic():
        admin.site._registry[model].delete_queryset(None, model.objects.filter(pk=row.pk))


def _delete_user(parent, username):
    """A user's deletion (plain ORM, the admin's delete page), which cascades to their conversations
    and messages."""
    from users.models import User

    User.objects.get(username=username).delete()


def _delete_room_author(room):
    _delete_user(room, "owner")


def _admin_delete_selected_user(parent, username):
    from users.models import User

    _admin_delete_selected(User, User.objects.get(username=username))


def _until_a_lock_is_waited_for() -> None:
    """PostgreSQL: until some transaction waits for a row lock (pg_locks). SQLite shows no waiter
    (a writer waits for the database lock inside sqlite3): a moment is all that can be given."""
    import time

    from django.db import connection

    if connection.vendor != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no transaction came to wait for a lock")


def _room_and_write(owner):
    room = factories.make_room(owner, "doomed")
    return room, lambda: services.message_create(author=owner, room=room, content="last")


def _conversation_and_write(owner):
    conversation = factories.make_conversation(owner, factories.make_user("other"))
    return conversation, lambda: services.message_create(author=owner, conversation=conversation, content="last")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("make", "delete"),
    [
        (_room_and_write, lambda room: services.room_delete(room=Room.objects.get(pk=room.pk))),
        (_room_and_write, lambda room: Room.objects.get(pk=room.pk).delete()),  # the admin's delete, plain ORM
        (_conversation_and_write, lambda conversation: Conversation.objects.get(pk=conversation.pk).delete()),
        (_room_and_write, lambda room: _admin_delete_selected(Room, room)),
        (_conversation_and_write, lambda conversation: _admin_delete_selected(Conversation, conversation)),
        (_conversation_and_write, lambda conversation: _delete_user(conversation, "owner")),  # the author
        (_conversation_and_write, lambda conversation: _delete_user(conversation, "other")),  # the other one
        (_room_and_write, _delete_room_author),
        (_conversation_and_write, lambda conversation: _admin_delete_selected_user(conversation, "owner")),
    ],
    ids=[
        "room-service", "room-orm", "conversation-orm", "room-admin-action", "conversation-admin-action",
        "conversation-author-deleted", "conversation-other-user-deleted", "room-author-deleted",
        "conversation-author-admin-action",
    ],
)
def test_a_message_and_the_delete_of_what_it_is_in_at_once_both_succeed(monkeypatch, make, delete):
    # The write has logged its event (it holds the channel's stream) when the delete starts. On
    # PostgreSQL the delete used to take the row, then wait for the stream, while the write's
    # commit waited for the row (its foreign key): "deadlock detected", one of them failed.
    import threading

    from django.db import connection

    from realtime import streams

    owner = factories.make_user("owner")
    parent, write = make(owner)
    logged, go = threading.Event(), threading.Event()
    append = streams.append

    def pausing_append(channel, *args, **kwargs):
        event = append(channel, *args, **kwargs)
        if threading.current_thread().name == "writer":
            logged.set()
            go.wait(10)
        return event

    monkeypatch.setattr(streams, "append", pausing_append)
    outcomes: dict[str, object] = {}

    def run(name, write):
        try:
            write()
            outcomes[name] = "ok"
        except Exception as exc:  # the outcome is the assertion
            outcomes[name] = exc
        finally:
            connection.close()

    writer = threading.Thread(target=run, name="writer", args=("writer", write))
    deleter = threading.Thread(target=run, name="deleter", args=("deleter", lambda: delete(parent)))
    writer.start()
    assert logged.wait(10)
    deleter.start()
    _until_a_lock_is_waited_for()  # the delete is waiting for the write now
    go.set()
    writer.join(20)
    deleter.join(20)

    assert outcomes == {"writer": "ok", "deleter": "ok"}
    assert not Message.objects.exists()
    # A room outlives its author's deletion; the rest went with the delete.
    assert type(parent).objects.filter(pk=parent.pk).exists() == (delete is _delete_room_author)


def test_posting_requires_authentication(anon, room):
    response = post(anon, room)

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert not Message.objects.exists()


# --- content validation ----------------------------------------------------------------------


def test_content_is_trimmed(api, room):
    response = post(api, room, "  \n hello there \t ")

    assert response.status_code == 201
    assert response.json()["content"] == "hello there"
    assert Message.objects.get().content == "hello there"


def test_content_of_exactly_4000_characters_is_accepted(api, room):
    response = post(api, room, "x" * 4000)

    assert response.status_code == 201
    assert Message.objects.get().content == "x" * 4000


def test_content_of_4000_characters_after_trimming_is_accepted(api, room):
    response = post(api, room, "  " + "x" * 4000 + "  ")

    assert response.status_code == 201
    assert Message.objects.get().content == "x" * 4000


def test_content_of_4001_characters_is_rejected(api, room):
    response = post(api, room, "x" * 4001)

    assert response.status_code == 400
    assert response.json() == validation_error(content=["Ensure this field has no more than 4000 characters."])
    assert not Message.objects.exists()


def test_content_of_4001_characters_after_trimming_is_rejected(api, room):
    response = post(api, room, " " + "x" * 4001 + " ")

    assert response.status_code == 400
    assert response.json() == validation_error(content=["Ensure this field has no more than 4000 characters."])
    assert not Message.objects.exists()


@pytest.mark.parametrize("content", ["", "   ", "\n\t  \r\n"], ids=["empty", "spaces", "whitespace"])
def test_blank_content_is_rejected(api, room, content):
    response = post(api, room, content)

    assert response.status_code == 400
    assert response.json() == validation_error(content=["This field may not be blank."])
    assert not Message.objects.exists()


INVISIBLE_ONLY = [
    pytest.param("\u200b", id="zero-width-space"),
    pytest.param("\u200b\u200c\u200d", id="zero-width-joiners"),
    pytest.param("\u3164", id="hangul-filler"),
    pytest.param("\u115f\u1160\uffa0", id="other-hangul-fillers"),
    pytest.param("\u2060", id="word-joiner"),
    pytest.param("\ufeff", id="byte-order-mark"),
    pytest.param("\u2800", id="braille-blank"),
    pytest.param("\ufe0f\u034f", id="variation-selector-and-grapheme-joiner"),
    pytest.param("\u00ad\u180e", id="soft-hyphen-and-mongolian-separator"),
    pytest.param(" \u200b \u3000 \u2060 ", id="mixed-with-spaces"),
]
CONTROL = "Control characters are not allowed."
BIDI = "Bidirectional override and isolate characters are not allowed."


@pytest.mark.parametrize("content", INVISIBLE_ONLY)
def test_content_of_invisible_characters_only_is_rejected(api, room, content):
    response = post(api, room, content)

    assert response.status_code == 400
    assert response.json() == validation_error(content=["This field may not be blank."])
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content",
    ["a\x1b[2Jb", "bell\x07", "a\rb", "a\x0bb", "a\x7fb", "a\x85b", "a\x9bb"],
    ids=["escape", "bell", "carriage-return", "vertical-tab", "delete", "c1-next-line", "c1-csi"],
)
def test_content_with_control_characters_is_rejected(api, room, content):
    response = post(api, room, content)

    assert response.status_code == 400
    assert response.json() == validation_error(content=[CONTROL])
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content",
    ["see \u202ecod.exe", "a\u202ab\u202c", "a\u202bb", "a\u202db", "a\u2066b\u2069", "a\u2067b", "a\u2068b"],
    ids=["rlo", "lre-pdf", "rle", "lro", "lri-pdi", "rli", "fsi"],
)
def test_content_with_bidi_overrides_or_isolates_is_rejected(api, room, content):
    response = post(api, room, content)

    assert response.status_code == 400
    assert response.json() == validation_error(content=[BIDI])
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content",
    ["line one\nline two", "a\tb", "zero\u200bwidth", "\U0001f469\u200d\U0001f4bb", "\u05e9\u05dc\u05d5\u05dd\u200f!", "\u2764\ufe0f"],
    ids=["newline", "tab", "zwsp-inside-text", "emoji-zwj-sequence", "rtl-mark", "emoji-variation"],
)
def test_content_with_visible_text_and_allowed_format_characters_is_accepted(api, room, content):
    response = post(api, room, content)

    assert response.status_code == 201
    assert Message.objects.get().content == content


def test_editing_content_to_invisible_characters_only_is_rejected(api, user, room):
    message = factories.make_message(user, room=room)

    response = api.patch(f"/v1/messages/{message.pk}", {"content": "\u3164"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(content=["This field may not be blank."])
    assert Message.objects.get(pk=message.pk).content == "hello"


@pytest.mark.parametrize(
    "content, error",
    [
        (123, "Must be a string."),
        (["hello"], "Must be a string."),
        ({"text": "hello"}, "Must be a string."),
        (True, "Must be a string."),
        (None, "This field may not be null."),
    ],
    ids=["number", "list", "object", "boolean", "null"],
)
def test_content_of_the_wrong_type_is_rejected(api, room, content, error):
    response = post(api, room, content)

    assert response.status_code == 400
    assert response.json() == validation_error(content=[error])
    assert not Message.objects.exists()


def test_missing_content_is_rejected(api, room):
    response = api.post(f"/v1/rooms/{room.pk}/messages", {}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(content=["This field is required."])
    assert not Message.objects.exists()


def test_an_unknown_field_is_rejected(api, room):
    response = api.post(f"/v1/rooms/{room.pk}/messages", {"content": "hi", "foo": 1}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(foo=["Unknown field."])
    assert not Message.objects.exists()


def test_a_body_that_is_a_json_list_is_rejected(api, room):
    response = api.post(f"/v1/rooms/{room.pk}/messages", [{"content": "hi"}], format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(
        non_field_errors=["Invalid data. Expected a dictionary, but got list."]
    )
    assert not Message.objects.exists()


def test_a_body_that_is_not_json_is_rejected(api, room):
    response = api.post(f"/v1/rooms/{room.pk}/messages", "{content: hi", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_JSON"
    assert not Message.objects.exists()


def test_content_with_a_null_character_is_rejected(api, room):
    response = post(api, room, "nul\x00here")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert list(response.json()["details"]) == ["content"]
    assert not Message.objects.exists()


# --- GET /v1/rooms/{id}/messages -------------------------------------------------------------


def test_history_is_newest_first(api, user, room):
    first, second, third = (factories.make_message(user, room=room, content=c) for c in ["one", "two", "three"])

    response = api.get(f"/v1/rooms/{room.pk}/messages")

    assert response.status_code == 200
    assert response.json() == page(third, second, first)


def test_history_holds_only_that_rooms_messages(api, user, room):
    elsewhere = factories.make_room(user, "elsewhere")
    factories.make_message(user, room=elsewhere)
    here = factories.make_message(user, room=room)

    response = api.get(f"/v1/rooms/room_{room.pk}/messages")

    assert response.json() == page(here)


def test_a_non_member_can_read_a_public_room(api, other_user):
    room = factories.make_room(other_user)
    message = factories.make_message(other_user, room=room)

    response = api.get(f"/v1/rooms/{room.pk}/messages")

    assert response.status_code == 200
    assert response.json() == page(message)


def test_reading_a_private_room_i_cannot_see_answers_404(api, other_user, private_room):
    factories.make_message(other_user, room=private_room)

    response = api.get(f"/v1/rooms/{private_room.pk}/messages")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_staff_can_read_a_private_room(client_for, staff, other_user, private_room):
    message = factories.make_message(other_user, room=private_room)

    response = client_for(staff).get(f"/v1/rooms/{private_room.pk}/messages")

    assert response.status_code == 200
    assert response.json() == page(message)


# --- pagination ------------------------------------------------------------------------------


def test_history_pages_by_limit(api, user, room):
    messages = [factories.make_message(user, room=room, content=str(n)) for n in range(3)]

    response = api.get(f"/v1/rooms/{room.pk}/messages?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [message_data(messages[2]), message_data(messages[1])]
    assert body["previous"] is None
    assert body["next"].startswith(f"http://testserver/v1/rooms/{room.pk}/messages?")
    assert "limit=2" in body["next"]


def test_the_last_page_has_no_next_link_and_a_previous_link(api, user, room):
    messages = [factories.make_message(user, room=room, content=str(n)) for n in range(3)]
    first_page = api.get(f"/v1/rooms/{room.pk}/messages?limit=2").json()

    response = api.get(first_page["next"])

    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [message_data(messages[0])]
    assert body["next"] is None
    assert body["previous"] is not None


def test_walking_the_history_while_messages_arrive_shows_each_old_message_exactly_once(api, user, other_user, room):
    history = [factories.make_message(user, room=room, content=f"old {n}") for n in range(7)]
    seen: list[str] = []
    arrived: list[Message] = []

    url = f"/v1/rooms/{room.pk}/messages?limit=2"
    while url is not None:
        body = api.get(url).json()
        seen.extend(item["id"] for item in body["results"])
        arrived.append(factories.make_message(other_user, room=room, content=f"new {len(arrived)}"))
        url = body["next"]

    assert seen == [f"msg_{m.pk}" for m in reversed(history)]
    assert len(arrived) == 4
    assert Message.objects.filter(room=room).count() == 11


def test_following_previous_links_goes_back_to_the_newest(api, user, room):
    messages = [factories.make_message(user, room=room, content=str(n)) for n in range(4)]
    first = api.get(f"/v1/rooms/{room.pk}/messages?limit=2").json()
    second = api.get(first["next"]).json()

    response = api.get(second["previous"])

    assert response.status_code == 200
    assert response.json()["results"] == [message_data(messages[3]), message_data(messages[2])]


# --- catch-up: ?after=<message id> --------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_after_answers_the_later_messages_oldest_first(api, user, room, form):
    seen, *later = [factories.make_message(user, room=room, content=str(n)) for n in range(3)]

    response = api.get(f"/v1/rooms/{room.pk}/messages", {"after": in_form(form, "msg", seen.pk)})

    assert response.status_code == 200
    assert response.json() == page(*later)


def test_after_pages_continue_towards_the_newest(api, user, room):
    seen, *later = [factories.make_message(user, room=room, content=str(n)) for n in range(6)]

    first = api.get(f"/v1/rooms/{room.pk}/messages", {"after": f"msg_{seen.pk}", "limit": 2}).json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    assert [page["results"] for page in (first, second, third)] == [
        [message_data(m) for m in later[0:2]],
        [message_data(m) for m in later[2:4]],
        [message_data(later[4])],
    ]
    assert third["next"] is None


def test_after_the_newest_message_is_an_empty_page(api, user, room):
    newest = factories.make_message(user, room=room)

    response = api.get(f"/v1/rooms/{room.pk}/messages", {"after": newest.pk})

    assert response.status_code == 200
    assert response.json() == page()


def test_after_a_message_deleted_since_still_catches_up(api, user, room):
    seen = factories.make_message(user, room=room, content="seen")
    seen_id = f"msg_{seen.pk}"
    later = factories.make_message(user, room=room, content="later")
    services.message_delete(message=seen)

    response = api.get(f"/v1/rooms/{room.pk}/messages", {"after": seen_id})

    assert response.json() == page(later)


def test_after_answers_only_the_rooms_own_messages(api, user, other_user, room):
    seen = factories.make_message(user, room=room)
    factories.make_message(other_user, room=factories.make_room(other_user, "elsewhere"))
    later = factories.make_message(user, room=room)

    response = api.get(f"/v1/rooms/{room.pk}/messages", {"after": seen.pk})

    assert response.json() == page(later)


@pytest.mark.parametrize("after", ["abc", "room_5", "0", "", "msg_", "-3", "msg_07", "9" * 20])
def test_a_malformed_after_is_rejected(api, room, after):
    response = api.get(f"/v1/rooms/{room.pk}/messages", {"after": after})

    assert response.status_code == 400
    assert response.json() == validation_error(after=["Not a valid message id; expected 'msg_42' or a positive integer."])


def test_an_unknown_query_parameter_on_history_is_rejected(api, room):
    response = api.get(f"/v1/rooms/{room.pk}/messages", {"since": "msg_1"})

    assert response.status_code == 400
    assert response.json() == validation_error(since=["Unknown query parameter."])


def test_the_default_page_holds_50_messages(api, user, room):
    messages = [factories.make_message(user, room=room, content=str(n)) for n in range(51)]

    body = api.get(f"/v1/rooms/{room.pk}/messages").json()

    assert [item["id"] for item in body["results"]] == [f"msg_{m.pk}" for m in reversed(messages[1:])]
    assert body["next"] is not None
    assert api.get(body["next"]).json()["results"] == [message_data(messages[0])]


def test_a_limit_of_100_is_accepted(api, user, room):
    messages = [factories.make_message(user, room=room, content=str(n)) for n in range(3)]

    response = api.get(f"/v1/rooms/{room.pk}/messages?limit=100")

    assert response.status_code == 200
    assert response.json() == page(*reversed(messages))


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "2.5", "", "1e2", "０"])
def test_a_limit_outside_1_to_100_is_rejected(api, room, limit):
    response = api.get(f"/v1/rooms/{room.pk}/messages", {"limit": limit})

    assert response.status_code == 400
    assert response.json() == validation_error(limit=BAD_LIMIT)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "cD0xMjM",  # "p=123" with its padding cut off
        b64("p=abc"),
        b64("p="),
        b64("p=-5"),
        b64("p=99999999999999999999999"),
        b64("o=-1"),
        b64("r=x"),
    ],
)
def test_a_garbage_cursor_is_rejected(api, user, room, cursor):
    factories.make_message(user, room=room)

    response = api.get(f"/v1/rooms/{room.pk}/messages", {"cursor": cursor})

    assert response.status_code == 400
    assert response.json() == validation_error(cursor=["Invalid cursor; use the next or previous link as given."])


# --- GET /v1/messages/{id} -------------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_reading_a_message_in_a_public_room(api, other_user, form):
    message = factories.make_message(other_user, room=factories.make_room(other_user))

    response = api.get(f"/v1/messages/{in_form(form, 'msg', message.pk)}")

    assert response.status_code == 200
    assert response.json() == message_data(message)


def test_reading_a_message_in_a_private_room_i_cannot_see_answers_404(api, other_user, private_room):
    message = factories.make_message(other_user, room=private_room)

    response = api.get(f"/v1/messages/msg_{message.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_reading_a_message_that_does_not_exist_answers_404(api, db):
    response = api.get("/v1/messages/msg_987654")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- PATCH /v1/messages/{id} -----------------------------------------------------------------


@pytest.mark.parametrize("form", ID_FORMS)
def test_the_author_edits_a_message(api, user, room, form):
    message = factories.make_message(user, room=room, content="typo")

    response = api.patch(f"/v1/messages/{in_form(form, 'msg', message.pk)}", {"content": "  fixed  "}, format="json")

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).content == "fixed"
    assert response.json() == message_data(message)


def test_an_edit_sets_edited_at(api, user, room):
    message = factories.make_message(user, room=room, content="typo")

    body = api.patch(f"/v1/messages/{message.pk}", {"content": "fixed"}, format="json").json()

    stored = Message.objects.get(pk=message.pk)
    assert stored.edited_at is not None
    assert body["edited_at"] == iso(stored.edited_at)


def test_an_edit_to_the_same_content_leaves_the_message_unedited(api, user, room):
    message = factories.make_message(user, room=room, content="same")

    response = api.patch(f"/v1/messages/{message.pk}", {"content": " same "}, format="json")

    assert response.status_code == 200
    assert response.json() == message_data(message)
    assert response.json()["edited_at"] is None


@pytest.mark.parametrize("editor", ["owner", "staff", "member"])
def test_nobody_but_the_author_edits_a_message(client_for, user, other_user, third_user, staff, room, editor):
    message = factories.make_message(user, room=room, content="mine")
    if editor == "member":
        services.membership_add(room=room, user=third_user)
    actor = {"owner": other_user, "staff": staff, "member": third_user}[editor]

    response = client_for(actor).patch(f"/v1/messages/{message.pk}", {"content": "theirs"}, format="json")

    assert response.status_code == 403
    assert response.json() == AUTHOR_ONLY
    assert Message.objects.get(pk=message.pk).content == "mine"


def test_editing_a_message_i_cannot_see_answers_404(api, other_user, private_room):
    message = factories.make_message(other_user, room=private_room, content="secret")

    response = api.patch(f"/v1/messages/{message.pk}", {"content": "leaked"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Message.objects.get(pk=message.pk).content == "secret"


@pytest.mark.parametrize(
    "body, details",
    [
        ({"content": "   "}, {"content": ["This field may not be blank."]}),
        ({"content": "x" * 4001}, {"content": ["Ensure this field has no more than 4000 characters."]}),
        ({"content": 123}, {"content": ["Must be a string."]}),
        ({"content": "ok", "foo": "bar"}, {"foo": ["Unknown field."]}),
    ],
    ids=["blank", "too-long", "number", "unknown-field"],
)
def test_an_invalid_edit_is_rejected_and_changes_nothing(api, user, room, body, details):
    message = factories.make_message(user, room=room, content="original")

    response = api.patch(f"/v1/messages/{message.pk}", body, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(**details)
    assert Message.objects.get(pk=message.pk).content == "original"


# --- DELETE /v1/messages/{id} ----------------------------------------------------------------


@pytest.mark.parametrize("deleter", ["author", "owner", "admin", "staff"])
def test_author_room_owner_room_admin_and_staff_delete_a_message(
    client_for, user, other_user, third_user, staff, room, deleter
):
    message = factories.make_message(user, room=room)
    if deleter == "admin":
        factories.make_admin(room, third_user)
    actor = {"author": user, "owner": other_user, "admin": third_user, "staff": staff}[deleter]

    response = client_for(actor).delete(f"/v1/messages/msg_{message.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Message.objects.filter(pk=message.pk).exists()


def test_a_plain_member_cannot_delete_someone_elses_message(client_for, user, other_user, room):
    message = factories.make_message(other_user, room=room)

    response = client_for(user).delete(f"/v1/messages/{message.pk}")

    assert response.status_code == 403
    assert response.json() == CANNOT_DELETE
    assert Message.objects.filter(pk=message.pk).exists()


def test_a_non_member_cannot_delete_a_message_in_a_public_room(client_for, user, third_user, room):
    message = factories.make_message(user, room=room)

    response = client_for(third_user).delete(f"/v1/messages/{message.pk}")

    assert response.status_code == 403
    assert response.json() == CANNOT_DELETE
    assert Message.objects.filter(pk=message.pk).exists()


def test_deleting_a_message_i_cannot_see_answers_404(api, other_user, private_room):
    message = factories.make_message(other_user, room=private_room)

    response = api.delete(f"/v1/messages/{message.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Message.objects.filter(pk=message.pk).exists()


def test_a_deleted_message_is_gone_from_the_history(api, user, room):
    kept = factories.make_message(user, room=room, content="kept")
    gone = factories.make_message(user, room=room, content="gone")

    api.delete(f"/v1/messages/{gone.pk}")

    assert api.get(f"/v1/rooms/{room.pk}/messages").json() == page(kept)
    assert api.get(f"/v1/messages/{gone.pk}").status_code == 404
