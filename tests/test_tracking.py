"""Change tracking and `model_update` (retrochat/tracking.py): what a save changed, and no save
(so no event) when nothing did. Events are captured at the publish boundary."""
import pytest

from retrochat.tracking import UNKNOWN, model_update
from rooms import services as room_services
from rooms.models import Message, Room
from tests import factories
from tests.support import capture_published
from users import services as user_services
from users.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(user):
    return factories.make_room(user, "lobby")


def published_types(sent: list) -> list[str]:
    return [message.get("event") or message["control"]["action"] for _, message in sent]


def test_a_loaded_instance_knows_its_saved_values(room):
    loaded = Room.objects.get(pk=room.pk)
    assert loaded.was("is_private") is False and not loaded.changed()
    loaded.is_private = True
    assert loaded.changed("is_private")


def test_a_deferred_field_counts_as_changed(room):
    loaded = Room.objects.only("name").get(pk=room.pk)
    assert loaded.was("is_private") is UNKNOWN
    assert loaded.became_private() is False  # still public once loaded
    loaded.is_private = True
    assert loaded.became_private()


def test_saving_takes_the_new_state_as_the_saved_one(room):
    loaded = Room.objects.get(pk=room.pk)
    loaded.is_private = True
    loaded.save()
    assert not loaded.changed() and loaded.was("is_private") is True


def test_model_update_saves_only_what_changed(room):
    assert model_update(instance=room, data={"name": "lobby", "topic": "news"}) is True
    room.refresh_from_db()
    assert (room.name, room.topic) == ("lobby", "news")


def test_model_update_with_nothing_new_saves_nothing(room, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_published(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        room_services.room_update(room=Room.objects.get(pk=room.pk), name="lobby", is_private=False)
    assert sent == []


def test_a_real_room_change_publishes_room_updated(room, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_published(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        room_services.room_update(room=Room.objects.get(pk=room.pk), topic="news")
    assert published_types(sent) == ["room:updated"]


def test_the_same_content_after_trimming_is_no_edit(user, room, monkeypatch, django_capture_on_commit_callbacks):
    message = factories.make_message(user, room=room, content="hello")
    sent = capture_published(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        room_services.message_update(message=Message.objects.get(pk=message.pk), content="  hello ")
    assert sent == [] and Message.objects.get(pk=message.pk).edited_at is None


def test_a_profile_update_with_the_same_values_publishes_nothing(user, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_published(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        user_services.user_update_profile(user=User.objects.get(pk=user.pk), display_name=user.display_name)
    assert sent == []


def test_deactivation_is_seen_once(user, monkeypatch, django_capture_on_commit_callbacks):
    sent = capture_published(monkeypatch)
    loaded = User.objects.get(pk=user.pk)
    loaded.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        loaded.save()
        loaded.save()  # saving the same state again is not news
    assert published_types(sent) == ["revoke_user"]
