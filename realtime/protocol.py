"""The realtime wire protocol: parsing client frames and building server frames.

Pure functions, no I/O, so every rule is testable on its own. Server control frames are encoded
with `ensure_ascii=True`: they may echo client text (a `ref`), and escaping keeps them valid UTF-8
whatever the client sent.
"""
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from realtime.channel_names import Channel, parse_channel
from realtime.streams import Position
from retrochat.timestamps import format_timestamp

MAX_REF_LENGTH = 64
MAX_EPOCH_LENGTH = 32
ALL_EVENTS = "*"

# Stable error codes.
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN"
INVALID_JSON = "INVALID_JSON"
INVALID_FRAME = "INVALID_FRAME"
UNKNOWN_TYPE = "UNKNOWN_TYPE"
INVALID_CHANNEL = "INVALID_CHANNEL"
INVALID_EVENT = "INVALID_EVENT"
CHANNEL_NOT_FOUND = "CHANNEL_NOT_FOUND"
FORBIDDEN = "FORBIDDEN"
SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
RATE_LIMITED = "RATE_LIMITED"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
SLOW_CONSUMER = "SLOW_CONSUMER"
CONNECTION_LIMIT = "CONNECTION_LIMIT"
INTERNAL_ERROR = "INTERNAL_ERROR"

# Close codes.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN_ORIGIN = 4003
CLOSE_SLOW_CONSUMER = 4008
CLOSE_RATE_LIMITED = 4029
CLOSE_TRY_AGAIN_LATER = 1013  # this server cannot serve a connection now; another one, or later, may

CLIENT_TYPES = ("subscribe", "unsubscribe", "list_subscriptions", "ping")


class ProtocolError(Exception):
    """A client frame that is answered with an `error` frame; the connection stays open."""

    def __init__(self, code: str, message: str, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


@dataclass(frozen=True)
class ClientFrame:
    type: str
    ref: str | int | None
    channel: Channel | None = None
    event: str | None = None  # None: not given
    since: Position | None = None  # recover the events after this position; None: not asked


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _valid_ref(ref: Any) -> bool:
    if isinstance(ref, bool):
        return False
    if isinstance(ref, int):
        return len(str(ref)) <= MAX_REF_LENGTH
    if isinstance(ref, str):
        return len(ref) <= MAX_REF_LENGTH and not any("\ud800" <= c <= "\udfff" for c in ref)
    return False


def decode(text: str) -> Any:
    """JSON text → value; INVALID_JSON for anything that is not strict JSON (NaN, Infinity too)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ProtocolError(INVALID_JSON, "The frame is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError(INVALID_JSON, f"The frame is not valid JSON: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]


def parse_frame(value: Any) -> ClientFrame:
    """A decoded JSON value → ClientFrame, or ProtocolError with its documented code."""
    if not isinstance(value, dict):
        raise ProtocolError(INVALID_FRAME, "A frame must be a JSON object.")
    ref = value.get("ref")
    if ref is not None and not _valid_ref(ref):
        raise ProtocolError(INVALID_FRAME, f"`ref` must be a string or an integer of at most {MAX_REF_LENGTH} characters.")
    frame_type = value.get("type")
    if frame_type is None:
        raise ProtocolError(INVALID_FRAME, "The frame has no `type`.", ref)
    if not isinstance(frame_type, str):
        raise ProtocolError(INVALID_FRAME, "`type` must be a string.", ref)
    if frame_type not in CLIENT_TYPES:
        raise ProtocolError(UNKNOWN_TYPE, f"Unknown frame type; expected one of {', '.join(CLIENT_TYPES)}.", ref)
    if frame_type in ("list_subscriptions", "ping"):
        return ClientFrame(frame_type, ref)
    raw_channel = value.get("channel")
    if raw_channel is None:
        raise ProtocolError(INVALID_FRAME, "The frame has no `channel`.", ref)
    if not isinstance(raw_channel, str):
        raise ProtocolError(INVALID_FRAME, "`channel` must be a string.", ref)
    channel = parse_channel(raw_channel)
    if channel is None:
        raise ProtocolError(
            INVALID_CHANNEL,
            "Malformed channel; expected room:{id}, conversation:{id} or user:{id} with a positive id.",
            ref,
        )
    event = value.get("event")
    if event is not None:
        if not isinstance(event, str):
            raise ProtocolError(INVALID_FRAME, "`event` must be a string.", ref)
        if not is_known_filter(channel, event):
            raise ProtocolError(INVALID_EVENT, f"Unknown event filter for {channel.kind} channels; expected {', '.join(filters_for(channel))}.", ref)
    since = _parse_since(value["since"], frame_type, ref) if value.get("since") is not None else None
    return ClientFrame(frame_type, ref, channel, event, since)


def _parse_since(since: Any, frame_type: str, ref: str | int | None) -> Position:
    """`{"offset": 40, "epoch": "k3F9"}`: a non-negative integer and the epoch string of a stream."""
    if frame_type != "subscribe":
        raise ProtocolError(INVALID_FRAME, "`since` is only valid on subscribe.", ref)
    if not isinstance(since, dict) or set(since) != {"offset", "epoch"}:
        raise ProtocolError(INVALID_FRAME, "`since` must be an object {\"offset\": …, \"epoch\": …}.", ref)
    offset, epoch = since["offset"], since["epoch"]
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**63:
        raise ProtocolError(INVALID_FRAME, "`since.offset` must be a non-negative integer.", ref)
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH_LENGTH or not epoch.isascii() or not epoch.isprintable():
        raise ProtocolError(INVALID_FRAME, f"`since.epoch` must be the epoch string a `subscribed` or event frame gave (at most {MAX_EPOCH_LENGTH} characters).", ref)
    return Position(epoch, offset)


def filters_for(channel: Channel) -> list[str]:
    """Every valid `event` filter of a channel kind: `*`, its categories and its exact types."""
    names = [ALL_EVENTS]
    for category, types in channel.categories.items():
        names.append(category)
        names.extend(types)
    return names


def is_known_filter(channel: Channel, event: str) -> bool:
    return event == ALL_EVENTS or event in channel.categories or any(event in t for t in channel.categories.values())


def categories_of_filter(channel: Channel, event: str) -> set[str]:
    """The categories (and so the groups) a filter needs."""
    if event == ALL_EVENTS:
        return channel.star_categories
    if event in channel.categories:
        return {event}
    return {channel.category_of(event)}


def filter_matches(event_filter: str, category: str, event_type: str) -> bool:
    return event_filter == ALL_EVENTS or event_filter == category or event_filter == event_type


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def _with_ref(frame: dict[str, Any], ref: str | int | None) -> dict[str, Any]:
    if ref is not None:
        frame["ref"] = ref
    return frame


def error(code: str, message: str, ref: str | int | None = None) -> str:
    return encode(_with_ref({"type": "error", "code": code, "message": message}, ref))


def connected(*, connection_id: str, user_id: str, heartbeat_interval: int, limits: dict[str, int]) -> str:
    return encode(
        {
            "type": "connected",
            "connection_id": connection_id,
            "user_id": user_id,
            "heartbeat_interval": heartbeat_interval,
            "limits": limits,
        }
    )


def subscribed(
    channel: Channel,
    event: str,
    ref: str | int | None,
    *,
    position: Position,
    recovered: bool | None = None,
    presence: dict[str, Any] | None = None,
) -> str:
    """`offset`/`epoch`: the newest event of the channel this connection stands after (for a new
    subscription, the stream's current head); `recovered` answers a `since`."""
    frame: dict[str, Any] = {"type": "subscribed", "channel": str(channel), "event": event,
                             "offset": position.offset, "epoch": position.epoch}
    if recovered is not None:
        frame["recovered"] = recovered
    if presence is not None:
        frame["presence"] = presence
    return encode(_with_ref(frame, ref))


def unsubscribed(channel: Channel, *, ref: str | int | None = None, event: str | None = None, reason: str | None = None) -> str:
    frame: dict[str, Any] = {"type": "unsubscribed", "channel": str(channel)}
    if event is not None:
        frame["event"] = event
    if reason is not None:
        frame["reason"] = reason
    return encode(_with_ref(frame, ref))


def subscriptions(entries: list[tuple[Channel, list[str]]], ref: str | int | None) -> str:
    items = [{"channel": str(channel), "events": events} for channel, events in entries]
    return encode(_with_ref({"type": "subscriptions", "subscriptions": items}, ref))


def pong(ref: str | int | None, now: datetime | None = None) -> str:
    return encode(_with_ref({"type": "pong", "server_time": format_timestamp(now or timezone.now())}, ref))
