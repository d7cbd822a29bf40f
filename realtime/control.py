"""Control messages: what every server process must do about a change of rights, as typed values.

They are sent after commit like events (realtime/publish.py), logged in the control stream so that a
process that missed one (Redis down, or another process in the embedded default) still gets it,
and handled by each process's hub (realtime/hub.py).
"""
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RevokeKey:
    """Close every socket authenticated by this API key (4001)."""

    key_id: int


@dataclass(frozen=True, slots=True)
class RevokeUser:
    """Close every socket of this user (4001): deactivated or deleted."""

    user_id: int


@dataclass(frozen=True, slots=True)
class ChannelDeleted:
    """The channel is gone: its subscribers are told `unsubscribed` with reason `channel_deleted`."""

    channel: str


@dataclass(frozen=True, slots=True)
class AccessChanged:
    """Who may watch the channel changed: re-check its subscribers (only `user_id`'s, when given)."""

    channel: str
    user_id: int | None = None


ControlMessage = RevokeKey | RevokeUser | ChannelDeleted | AccessChanged

_ACTIONS: dict[str, type] = {
    "revoke_key": RevokeKey,
    "revoke_user": RevokeUser,
    "channel_deleted": ChannelDeleted,
    "access_changed": AccessChanged,
}
_ACTION_OF = {cls: action for action, cls in _ACTIONS.items()}


def action_of(message: ControlMessage) -> str:
    return _ACTION_OF[type(message)]


def to_payload(message: ControlMessage) -> dict[str, Any]:
    return {"action": action_of(message), **asdict(message)}


def from_payload(payload: dict[str, Any]) -> ControlMessage | None:
    """The message, or None for one this version does not know (a newer process sent it)."""
    cls = _ACTIONS.get(payload.get("action", ""))
    if cls is None:
        return None
    fields = {key: value for key, value in payload.items() if key != "action"}
    try:
        return cls(**fields)
    except TypeError:
        return None
