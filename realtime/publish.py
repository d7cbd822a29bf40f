"""Publishing events: the one way an event leaves the process that caused it.

`publish_on_commit` is what receivers call: the event is encoded to JSON once, right away (so it
describes the row as this transaction saved it), and handed to the channel layer only after the
transaction commits. A rolled-back change sends nothing, and no client is told about a row it
cannot read yet. `send_event_rollback_unsafe` sends at once; its name says why callers inside a
transaction must not use it.
"""
import json
import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.events import Event
from retrochat import metrics

logger = logging.getLogger("retrochat.realtime")

# Channel-layer message types, read by the hub (realtime/hub.py).
EVENT_MESSAGE_TYPE = "rc.event"
CONTROL_MESSAGE_TYPE = "rc.control"
# Every server process's hub listens on this group for revocations and access changes.
CONTROL_GROUP = "rc.control"


def encode(event: Event) -> str:
    return json.dumps(event.frame(), ensure_ascii=False, separators=(",", ":"))


def layer_message(event: Event, text: str) -> dict[str, str]:
    """What travels through the channel layer: the pre-encoded frame plus what filters need."""
    return {
        "type": EVENT_MESSAGE_TYPE,
        "group": event.group,
        "channel": str(event.channel),
        "category": event.category,
        "event": event.type,
        "text": text,
        "published_at": time.time(),  # for the delivery latency histogram
    }


def publish_on_commit(event: Event, *, using: str | None = None) -> None:
    text = encode(event)

    def send_after_commit() -> None:  # a function, not a partial: Django logs robust failures by __qualname__
        send_event_rollback_unsafe(event, text)

    # robust: a channel-layer failure is logged and does not fail the request that committed.
    transaction.on_commit(send_after_commit, using=using, robust=True)


def send_event_rollback_unsafe(event: Event, text: str | None = None) -> None:
    """Send now, from synchronous code, whether or not the surrounding transaction commits."""
    text = text if text is not None else encode(event)
    async_to_sync(get_channel_layer().group_send)(event.group, layer_message(event, text))
    metrics.inc("retrochat_events_published_total", f'type="{event.type}"')
    logger.debug("published %s to %s", event.type, event.group)


def control_on_commit(action: str, *, using: str | None = None, **fields: object) -> None:
    """Tell every server process, after commit, about a revocation or an access change.

    Actions: `revoke_key` (key_id), `revoke_user` (user_id), `channel_deleted` (channel) and
    `access_changed` (channel, optional user_id: re-check that user's or everyone's access).
    """
    message = {"type": CONTROL_MESSAGE_TYPE, "action": action, **fields}

    def send_after_commit() -> None:
        _send_control(message)

    transaction.on_commit(send_after_commit, using=using, robust=True)


def _send_control(message: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(CONTROL_GROUP, message)


async def publish_now(event: Event) -> None:
    """Send from async code (presence transitions): not tied to any database transaction."""
    await get_channel_layer().group_send(event.group, layer_message(event, encode(event)))
    metrics.inc("retrochat_events_published_total", f'type="{event.type}"')
