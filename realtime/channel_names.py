"""Channel names, channel kinds and channel-layer group names: the one place that knows them.

A channel is `kind:id` with a registered kind (`room`, `conversation`, `user`) and a positive id,
bare or prefixed (`room:7` is `room:room_7`); replies always name it canonically (`room:7`). Each
channel is one channel-layer group: a channel is one stream of offsets (realtime/streams.py), so a
process that follows it receives all of its events, in order, and each connection's filters pick
theirs.

Kinds are registered by the app that owns their objects (rooms/channels.py, users/channels.py), as
Baserow's page types are: each says its id prefix, its event categories, which categories `*`
leaves out, and who may subscribe. The realtime layer asks the registry and never the domain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from retrochat import ids

if TYPE_CHECKING:
    from users.models import User

ROOM = "room"
CONVERSATION = "conversation"
USER = "user"

MAX_CHANNEL_LENGTH = 100

MESSAGE_EVENTS = ("message:new", "message:updated", "message:deleted")
ACTIVITY_EVENTS = ("user:online", "user:offline", "user:updated")


@dataclass(frozen=True)
class Access:
    """Who may subscribe: `error` (CHANNEL_NOT_FOUND, FORBIDDEN) or the categories this user may
    receive; `subject` is whatever the kind needs again to describe the channel's presence."""

    error: str | None
    categories: frozenset[str] = frozenset()
    subject: Any = None


class ChannelKind:
    """One kind of channel. Subclasses set the class attributes and implement `access`."""

    name: ClassVar[str]
    id_prefix: ClassVar[str]
    categories: ClassVar[dict[str, tuple[str, ...]]]
    opt_in: ClassVar[frozenset[str]] = frozenset()  # categories `*` leaves out

    def access(self, user: User, pk: int) -> Access:
        """Synchronous (it reads the database)."""
        raise NotImplementedError

    def presence(self, access: Access, granted: frozenset[str]) -> dict[str, Any] | None:
        """What `subscribed` says about who is online, for the categories granted (None: nothing)."""
        return None


_KINDS: dict[str, ChannelKind] = {}


def register(kind: ChannelKind) -> None:
    _KINDS[kind.name] = kind


def kind_of(name: str) -> ChannelKind:
    return _KINDS[name]


def kinds() -> list[ChannelKind]:
    return list(_KINDS.values())


@dataclass(frozen=True, slots=True)
class Channel:
    kind: str
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        return _KINDS[self.kind].categories

    @property
    def star_categories(self) -> set[str]:
        """What `*` subscribes to: every category but the opt-in ones."""
        kind = _KINDS[self.kind]
        return set(kind.categories) - kind.opt_in

    @property
    def group(self) -> str:
        """The channel-layer group of this channel (`rc.room.7`)."""
        return f"rc.{self.kind}.{self.id}"

    def category_of(self, event_type: str) -> str:
        for category, types in self.categories.items():
            if event_type in types:
                return category
        raise ValueError(f"{event_type!r} is not an event of {self.kind} channels")


def room(pk: int) -> Channel:
    return Channel(ROOM, pk)


def conversation(pk: int) -> Channel:
    return Channel(CONVERSATION, pk)


def user(pk: int) -> Channel:
    return Channel(USER, pk)


def parse_channel(name: object) -> Channel | None:
    """`room:7` or `room:room_7` → Channel; anything malformed → None."""
    if not isinstance(name, str) or len(name) > MAX_CHANNEL_LENGTH:
        return None
    kind_name, sep, raw_id = name.partition(":")
    kind = _KINDS.get(kind_name) if sep else None
    if kind is None:
        return None
    pk = ids.parse_id(kind.id_prefix, raw_id)
    return None if pk is None else Channel(kind_name, pk)
