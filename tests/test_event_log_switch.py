"""RETROCHAT_EVENT_LOG=0 (benchmarks only, bench/run.py): no log row, frames without a position."""
import json

import pytest

from realtime import publish
from realtime.models import StreamEvent
from tests.factories import make_message, make_room, make_user


def _published(monkeypatch, django_capture_on_commit_callbacks) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(publish, "_send", lambda group, message: sent.append(message))
    owner = make_user("owner")
    room = make_room(owner)
    with django_capture_on_commit_callbacks(execute=True):
        make_message(owner, room=room, content="hello")
    return [m for m in sent if m.get("event") == "message:new"]


@pytest.mark.django_db
def test_the_event_log_is_on_by_default(monkeypatch, django_capture_on_commit_callbacks):
    [message] = _published(monkeypatch, django_capture_on_commit_callbacks)
    assert message["offset"] >= 1 and message["epoch"]
    assert json.loads(message["text"])["offset"] == message["offset"]
    assert StreamEvent.objects.filter(channel=message["channel"], type="message:new").count() == 1


@pytest.mark.django_db
def test_switched_off_nothing_is_logged_and_frames_carry_no_position(monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.RETROCHAT_EVENT_LOG = False
    [message] = _published(monkeypatch, django_capture_on_commit_callbacks)
    assert "offset" not in message and "epoch" not in message
    frame = json.loads(message["text"])
    assert "offset" not in frame and frame["data"]["content"] == "hello"
    assert not StreamEvent.objects.filter(type="message:new").exists()
