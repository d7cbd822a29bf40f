"""Channel names, event categories and channel-layer group names: the one place that knows them.

A channel is `kind:id` with kind `room`, `conversation` or `user` and a positive id, bare or
prefixed (`room:7` is `room:room_7`); replies always name it canonically (`room:7`). Each channel is
one channel-layer group: a channel is one stream of offsets (realtime/streams.py), so a process
that follows it receives all of its events, in order, and each connection's filters pick theirs.
"""
from dataclasses import dataclass

from retrochat import ids

ROOM = "room"
CONVERSATION = "conversation"
USER = "user"

MAX_CHANNEL_LENGTH = 100

_ID_PREFIX = {ROOM: ids.ROOM, CONVERSATION: ids.CONVERSATION, USER: ids.USER}

# Event category → event types, per channel kind (SPEC §3.3).
MESSAGE_EVENTS = ("message:new", "message:updated", "message:deleted")
ACTIVITY_EVENTS = ("user:online", "user:offline", "user:updated")  # on a room: its members' activity
CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    ROOM: {"message": MESSAGE_EVENTS, "room": ("room:updated", "room:deleted"), "activity": ACTIVITY_EVENTS},
    CONVERSATION: {"message": MESSAGE_EVENTS},
    USER: {"activity": ACTIVITY_EVENTS, "room": ("room:created", "room:deleted")},
}
# Categories that `*` does not include: a room's member activity is asked for by name (`activity`),
# so that a client subscribing to a room's messages is not flooded with its members' comings and goings.
OPT_IN: dict[str, frozenset[str]] = {ROOM: frozenset({"activity"})}


@dataclass(frozen=True, slots=True)
class Channel:
    kind: str
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        return CATEGORIES[self.kind]

    @property
    def star_categories(self) -> set[str]:
        """What `*` subscribes to: every category but the opt-in ones."""
        return set(CATEGORIES[self.kind]) - OPT_IN.get(self.kind, frozenset())

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
    kind, sep, raw_id = name.partition(":")
    if not sep or kind not in _ID_PREFIX:
        return None
    pk = ids.parse_id(_ID_PREFIX[kind], raw_id)
    return None if pk is None else Channel(kind, pk)
