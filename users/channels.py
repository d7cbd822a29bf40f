"""The realtime channel kind of users: their activity (anyone), and their room feed and conversation
feed (theirs alone). The conversation feed (`conversation:created`) is opt-in: `*` leaves it out, so
a client that subscribed with `*` before it existed receives exactly what it did then."""
from typing import Any

from realtime import presence, protocol
from realtime.channel_names import ACTIVITY_EVENTS, USER, Access, ChannelKind, register
from retrochat import ids
from retrochat.timestamps import format_timestamp
from users.models import User


class UserChannels(ChannelKind):
    name = USER
    id_prefix = ids.USER
    categories = {"activity": ACTIVITY_EVENTS, "room": ("room:created", "room:deleted"), "conversation": ("conversation:created",)}
    opt_in = frozenset({"conversation"})

    def access(self, user: User, pk: int) -> Access:
        subject = User.objects.filter(pk=pk).first()
        if subject is None:
            return Access(protocol.CHANNEL_NOT_FOUND)
        # Anyone may follow a user's activity; their room and conversation feeds are theirs alone.
        categories = {"activity", "room", "conversation"} if subject.pk == user.pk else {"activity"}
        return Access(None, frozenset(categories), subject)

    def presence(self, granted_access: Access, granted: frozenset[str]) -> dict[str, Any] | None:
        if "activity" not in granted:
            return None
        subject = granted_access.subject
        return {
            "status": presence.status_of(subject.pk),
            "last_seen_at": format_timestamp(subject.last_seen_at) if subject.last_seen_at else None,
        }


def register_kinds() -> None:
    register(UserChannels())
