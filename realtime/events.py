"""Event shapes: the one module that builds the `type`, `channel` and `data` of events.

Payloads reuse the REST serializers, so an event's `data` is exactly what REST returns for the
same object.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.utils import timezone

from realtime import channel_names, presence
from realtime.channel_names import Channel
from retrochat import ids
from rooms.api.serializers import ConversationSerializer, MessageSerializer, RoomSharedSerializer, message_identity
from users.api.serializers import UserSerializer
from retrochat.timestamps import format_timestamp

if TYPE_CHECKING:
    from rooms.models import Conversation, Message, Room
    from users.models import User


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    channel: Channel
    data: dict[str, Any]

    @property
    def category(self) -> str:
        return self.channel.category_of(self.type)

    @property
    def group(self) -> str:
        return self.channel.group

    def frame(self, offset: int | None = None, epoch: str | None = None) -> dict[str, Any]:
        """The frame clients receive; logged events carry their stream position."""
        frame: dict[str, Any] = {"type": self.type, "channel": str(self.channel)}
        if offset is not None:
            frame["offset"], frame["epoch"] = offset, epoch
        frame["data"] = self.data
        return frame


def _message_channel(message: Message) -> Channel:
    # A message is in exactly one room or one conversation (a database constraint).
    if message.room_id is not None:
        return channel_names.room(message.room_id)
    return channel_names.conversation(cast(int, message.conversation_id))


def message_saved(message: Message, *, created: bool) -> Event:
    event_type = "message:new" if created else "message:updated"
    return Event(event_type, _message_channel(message), dict(MessageSerializer(message).data))


def message_deleted(message: Message, *, deleted_at: datetime) -> Event:
    data = message_identity(message)
    data["deleted_at"] = format_timestamp(deleted_at)
    return Event("message:deleted", _message_channel(message), data)


def _room_data(room: Room) -> dict[str, Any]:
    """The room as REST returns it, without the viewer's `is_member`: an event has no single viewer."""
    data = dict(RoomSharedSerializer(room).data)
    if getattr(room, "member_count", None) is not None:
        # The serializer trusts a `member_count` annotated when the room was loaded (REST views and
        # the admin load it so), but the membership change this event announces came after: count
        # the rows as this transaction sees them.
        data["member_count"] = room.memberships.count()
    return data


def room_updated(room: Room) -> Event:
    return Event("room:updated", channel_names.room(room.pk), _room_data(room))


def room_deleted(room_id: int, *, reason: str) -> Event:
    """On the room's own channel (reason `deleted`)."""
    return Event("room:deleted", channel_names.room(room_id), _room_deleted_data(room_id, reason))


def room_joined(room: Room, *, user_id: int) -> Event:
    """`room:created` on a user's own feed: the room appeared in their list because they became a member."""
    return Event("room:created", channel_names.user(user_id), {**_room_data(room), "is_member": True})


def room_left(room_id: int, *, user_id: int, reason: str) -> Event:
    """`room:deleted` on a user's own feed: the room left their list (deleted, left, removed)."""
    return Event("room:deleted", channel_names.user(user_id), _room_deleted_data(room_id, reason))


def conversation_created(conversation: Conversation, *, user_id: int) -> Event:
    """`conversation:created` on a participant's own feed: a direct conversation with them began
    (they can subscribe to `conversation:{id}` from here on). The conversation as REST returns it."""
    return Event("conversation:created", channel_names.user(user_id), dict(ConversationSerializer(conversation).data))


def _room_deleted_data(room_id: int, reason: str) -> dict[str, Any]:
    return {"id": ids.format_id(ids.ROOM, room_id), "reason": reason}


def user_updated(user: User, *, room_ids: Iterable[int] = ()) -> list[Event]:
    """On the user's own channel, then (the same data) on each room they are a member of."""
    profile = dict(UserSerializer(user).data)
    data = {
        "user_id": profile.pop("id"),
        "status": profile.pop("status"),
        "timestamp": format_timestamp(timezone.now()),
        **profile,
    }
    channels = [channel_names.user(user.pk), *(channel_names.room(room_id) for room_id in room_ids)]
    return [Event("user:updated", channel, data) for channel in channels]


def user_presence(user_id: int, *, status: str, at: datetime, room_id: int | None = None) -> Event:
    """`user:online` / `user:offline` on the user's channel, or (`room_id`) on a room they are a member of."""
    event_type = "user:online" if status == presence.ONLINE else "user:offline"
    data = {"user_id": ids.format_id(ids.USER, user_id), "status": status, "timestamp": format_timestamp(at)}
    channel = channel_names.room(room_id) if room_id is not None else channel_names.user(user_id)
    return Event(event_type, channel, data)
