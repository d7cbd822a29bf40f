"""Who may subscribe to what (SPEC §3.3), checked at every subscribe and re-checked on access changes.

Synchronous (it reads the database); the consumer calls it through `realtime_db` (realtime/db.py).
"""
from dataclasses import dataclass
from typing import Any

from realtime import channel_names, presence, protocol, streams
from realtime.channel_names import Channel
from retrochat import ids
from retrochat.timestamps import format_timestamp
from rooms import access
from rooms.models import Conversation, Membership, Room
from users.models import User


@dataclass(frozen=True)
class Decision:
    """`error` is None when allowed; `categories` are the ones the filter grants."""

    error: str | None
    categories: frozenset[str] = frozenset()
    presence: dict[str, Any] | None = None


_FORBIDDEN = Decision(protocol.FORBIDDEN)


def permitted_categories(user: User, channel: Channel) -> tuple[str | None, frozenset[str], User | None]:
    """(error code or None, the categories this user may receive on the channel, the channel's user)."""
    if channel.kind == channel_names.ROOM:
        room = Room.objects.filter(pk=channel.id).first()
        if room is None:
            return protocol.CHANNEL_NOT_FOUND, frozenset(), None
        if not access.can_view_room(user, room):
            return protocol.FORBIDDEN, frozenset(), None
        return None, frozenset(channel.categories), None
    if channel.kind == channel_names.CONVERSATION:
        conversation = Conversation.objects.filter(pk=channel.id).first()
        if conversation is None:
            return protocol.CHANNEL_NOT_FOUND, frozenset(), None
        if not access.is_participant(user, conversation):
            return protocol.FORBIDDEN, frozenset(), None
        return None, frozenset(channel.categories), None
    subject = User.objects.filter(pk=channel.id).first()
    if subject is None:
        return protocol.CHANNEL_NOT_FOUND, frozenset(), None
    # Anyone may follow a user's activity; their room feed is theirs alone.
    categories = {"activity", "room"} if subject.pk == user.pk else {"activity"}
    return None, frozenset(categories), subject


def check_subscription(user: User, channel: Channel, event_filter: str) -> Decision:
    error, permitted, subject = permitted_categories(user, channel)
    if error:
        return Decision(error)
    wanted = protocol.categories_of_filter(channel, event_filter)
    if event_filter == protocol.ALL_EVENTS:
        granted = frozenset(wanted & permitted)  # `*`: every event this user may see
    elif wanted <= permitted:
        granted = frozenset(wanted)
    else:
        return _FORBIDDEN
    current_presence = None
    if channel.kind == channel_names.ROOM and "activity" in granted:
        members = list(Membership.objects.filter(room_id=channel.id).order_by("user_id").values_list("user_id", flat=True))
        current_presence = {"online": [ids.format_id(ids.USER, pk) for pk in presence.online_among(members)]}
    elif subject is not None and "activity" in granted:
        current_presence = {
            "status": presence.status_of(subject.pk),
            "last_seen_at": format_timestamp(subject.last_seen_at) if subject.last_seen_at else None,
        }
    return Decision(None, granted, current_presence)


@dataclass(frozen=True)
class Preparation:
    """What a subscribe needs from the database, read in one call: the decision, the stream's
    position, and (for `since`) the missed events, or None when they cannot all be given."""

    error: str | None
    categories: frozenset[str] = frozenset()
    presence: dict[str, Any] | None = None
    position: streams.Position | None = None
    missed: list[streams.LoggedEvent] | None = None


def prepare_subscription(user_id: int, channel: Channel, event_filter: str, since: streams.Position | None, max_events: int) -> Preparation:
    """The access check with the user as the database has it now (not as they connected), then the
    stream's position and what `since` asks to recover."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return Preparation(protocol.UNAUTHORIZED)
    decision = check_subscription(user, channel, event_filter)
    if decision.error:
        return Preparation(decision.error)
    position = streams.ensure_position(str(channel))
    missed = None if since is None else streams.missed_events(str(channel), since, position, max_events)
    return Preparation(None, decision.categories, decision.presence, position, missed)


def may_keep(user_id: int, channel: Channel) -> bool:
    """Whether a connected user still has access to a channel (after a membership or privacy change)."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return user is not None and permitted_categories(user, channel)[0] is None
