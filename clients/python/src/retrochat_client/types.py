"""What the client hands to applications: stream positions, events, subscription signals, states
and errors. Payload shapes follow docs/realtime.md and docs/asyncapi.yaml."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict, Union


@dataclass(frozen=True, slots=True)
class Position:
    """Where a channel's stream stands: its epoch and the offset of the newest event (0: none yet)."""

    epoch: str
    offset: int

    def as_since(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


# --- event payloads (`data`) --------------------------------------------------------------------
class MessageData(TypedDict):
    """`message:new` and `message:updated`: the message as REST returns it."""

    id: str
    room_id: NotRequired[str]  # in a room …
    conversation_id: NotRequired[str]  # … or in a direct conversation, never both
    user_id: str
    content: str
    created_at: str
    updated_at: str
    edited_at: str | None


class MessageDeletedData(TypedDict):
    id: str
    room_id: NotRequired[str]
    conversation_id: NotRequired[str]
    user_id: str
    deleted_at: str


class RoomData(TypedDict):
    """`room:updated` (no `is_member`) and `room:created` on a user's own feed (`is_member: true`)."""

    id: str
    name: str
    topic: str
    is_private: bool
    created_by: str | None
    created_at: str
    updated_at: str
    member_count: int
    is_member: NotRequired[bool]


class RoomDeletedData(TypedDict):
    id: str
    reason: Literal["deleted", "left", "removed"]


class ConversationData(TypedDict):
    """`conversation:created` on a user's own feed (asked for by name: `*` leaves it out)."""

    id: str
    participants: list[str]
    created_at: str


class UserPresenceData(TypedDict):
    """`user:online` and `user:offline`."""

    user_id: str
    status: Literal["online", "offline"]
    timestamp: str


class UserUpdatedData(UserPresenceData):
    username: str
    display_name: str
    avatar_url: str
    last_seen_at: str | None


EventData = Union[MessageData, MessageDeletedData, RoomData, RoomDeletedData, ConversationData, UserPresenceData, UserUpdatedData]

EventType = Literal[
    "message:new", "message:updated", "message:deleted",
    "room:created", "room:updated", "room:deleted",
    "conversation:created",
    "user:online", "user:offline", "user:updated",
]


# --- what a subscription yields -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Event:
    """One event frame. Logged events carry their stream position; presence events
    (`user:online`, `user:offline`) carry none."""

    type: str
    channel: str
    data: Any  # one of the TypedDicts above, by `type`
    offset: int | None = None
    epoch: str | None = None

    @property
    def position(self) -> Position | None:
        return None if self.offset is None or self.epoch is None else Position(self.epoch, self.offset)


@dataclass(frozen=True, slots=True)
class NotRecovered:
    """The server could not replay what this subscription missed while disconnected (too many
    events, no longer retained, or the stream was reset). Refetch over REST; the events that
    follow come after `position`."""

    channel: str
    position: Position


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """After a resubscribe, the presence the server answered (presence events are not replayed):
    `{"status", "last_seen_at"}` for a user channel, `{"online": [...]}` for room activity."""

    channel: str
    presence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server ended the subscription unasked: `access_revoked` or `channel_deleted`. Last item."""

    channel: str
    reason: str


Item = Union[Event, NotRecovered, PresenceSnapshot, Unsubscribed]


# --- connection states ----------------------------------------------------------------------------
class ConnectionState(str, enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # will reconnect (after `retry_in` seconds)
    CLOSED = "closed"  # final: closed by the application, or a close code that forbids retrying


@dataclass(frozen=True, slots=True)
class StateChange:
    state: ConnectionState
    close_code: int | None = None
    error: RetroChatError | None = None
    retry_in: float | None = None


# --- errors ---------------------------------------------------------------------------------------
class RetroChatError(Exception):
    """An error with the server's code (`FORBIDDEN`, `UNAUTHORIZED`, …) and, when the connection
    was closed for it, the close code."""

    def __init__(self, code: str, message: str = "", *, close_code: int | None = None, ref: str | int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.close_code = close_code
        self.ref = ref


class ClientClosed(RetroChatError):
    """The client is closed (by the application, or for good after 4001/4003)."""
