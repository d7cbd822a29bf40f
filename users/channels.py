"""The realtime channel kind of users: their activity (anyone) and their room feed (theirs alone)."""
from typing import Any

from realtime import presence, protocol
from realtime.channel_names import ACTIVITY_EVENTS, USER, Access, ChannelKind, register
from retrochat import ids
from retrochat.timestamps import format_timestamp
from users.models import User


class UserChannels(ChannelKind):
    name = USER
    id_prefix = ids.USER
    categories = {"activity": ACTIVITY_EVENTS, "room": ("room:created", "room:deleted")}

    def access(self, user: User, pk: int) -> Access:
        subject = User.objects.filter(pk=pk).first()
        if subject is None:
            return Access(protocol.CHANNEL_NOT_FOUND)
        # Anyone may follow a user's activity; their room feed is theirs alone.
        categories = {"activity", "room"} if subject.pk == user.pk else {"activity"}
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
