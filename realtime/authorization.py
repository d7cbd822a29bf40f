"""Who may subscribe to what, checked at every subscribe and re-checked on access changes: the
channel's registered kind (realtime/channel_names.py) decides which categories a user may receive;
this module applies event filters to that and prepares the rest of a subscribe.

Synchronous (it reads the database); the consumer calls it through `realtime_db` (realtime/db.py).
"""
from dataclasses import dataclass
from typing import Any

from realtime import channel_names, protocol, streams
from realtime.channel_names import Channel
from users.models import User


@dataclass(frozen=True)
class Decision:
    """`error` is None when allowed; `categories` are the ones the filter grants."""

    error: str | None
    categories: frozenset[str] = frozenset()
    presence: dict[str, Any] | None = None


def check_subscription(user: User, channel: Channel, event_filter: str) -> Decision:
    kind = channel_names.kind_of(channel.kind)
    access = kind.access(user, channel.id)
    if access.error:
        return Decision(access.error)
    wanted = protocol.categories_of_filter(channel, event_filter)
    if event_filter == protocol.ALL_EVENTS:
        granted = frozenset(wanted & access.categories)  # `*`: every event this user may see
    elif wanted <= access.categories:
        granted = frozenset(wanted)
    else:
        return Decision(protocol.FORBIDDEN)
    return Decision(None, granted, kind.presence(access, granted))


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
    return user is not None and channel_names.kind_of(channel.kind).access(user, channel.id).error is None
