"""`manage.py prune_events` (the event log's retention, docs/deploy.md)."""
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from realtime import streams
from realtime.models import StreamEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    stdout = io.StringIO()
    call_command("prune_events", *args, stdout=stdout)
    return stdout.getvalue()


def fill(channel: str, count: int) -> None:
    for _ in range(count):
        streams.append(channel, "message:new", lambda offset, epoch: "{}")


def retained(channel: str) -> list[int]:
    return list(StreamEvent.objects.filter(channel=channel).order_by("offset").values_list("offset", flat=True))


def test_prune_events_applies_the_settings_and_prints_the_count_on_one_line(settings):
    settings.RETROCHAT_HISTORY_SIZE = 2
    settings.RETROCHAT_HISTORY_TTL = 3600
    fill("room:1", 5)
    fill("room:2", 1)
    assert run() == "Deleted 3 event(s).\n"
    assert retained("room:1") == [4, 5]
    assert retained("room:2") == [1]
    assert run() == "Deleted 0 event(s).\n"


def test_prune_events_history_size_overrides_the_setting(settings):
    settings.RETROCHAT_HISTORY_SIZE = 1000
    fill("room:1", 5)
    assert run("--history-size", "1") == "Deleted 4 event(s).\n"
    assert retained("room:1") == [5]


def test_prune_events_ttl_overrides_the_setting(settings):
    settings.RETROCHAT_HISTORY_TTL = 86400
    fill("room:1", 3)
    StreamEvent.objects.filter(offset__lte=2).update(created_at=timezone.now() - timedelta(seconds=120))
    assert run("--ttl", "60") == "Deleted 2 event(s).\n"
    assert retained("room:1") == [3]


def test_prune_events_refuses_negative_values(db):
    with pytest.raises(CommandError, match="--history-size"):
        run("--history-size", "-1")
    with pytest.raises(CommandError, match="--ttl"):
        run("--ttl", "-5")
