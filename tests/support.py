"""The suite's one vocabulary: matchers, frame and body builders, and capture at the publish boundary.

Matchers stand for values a test cannot know (a server clock reading, an offset, a human-readable
message) while the rest of a frame is compared exactly with `==`. Builders read the row from the
database and build the expected payload here, never with the code under test.
"""
import asyncio
import json
import re
import time
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Callable

import pytest

from realtime import publish, streams
from realtime.channel_names import parse_channel
from realtime.models import Stream

# --- matchers ----------------------------------------------------------------------------------

_ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", re.ASCII)


class _Timestamp:
    """Equal to any ISO 8601 UTC timestamp ending in `Z`: server clock readings a test cannot know."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and _ISO_Z.fullmatch(other) is not None

    def __repr__(self) -> str:
        return "<ISO 8601 timestamp ending in Z>"


class _Text:
    """Equal to any non-empty string: error `message`s are for people, their wording is not contract."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other.strip())

    def __repr__(self) -> str:
        return "<non-empty message text>"


class _Offset:
    """Equal to any stream offset (a non-negative integer): for tests about something else."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool) and other >= 0

    def __repr__(self) -> str:
        return "<any offset>"


class _Epoch:
    """Equal to any stream epoch (a non-empty string)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any epoch>"


TIMESTAMP = _Timestamp()
TEXT = _Text()
OFFSET = _Offset()
EPOCH = _Epoch()
# The stream position every `subscribed` frame carries, where a test is not about positions.
POSITION: dict[str, Any] = {"offset": OFFSET, "epoch": EPOCH}


# --- bodies --------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """A timestamp as the API writes it: ISO 8601 in UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_identity(message: Any) -> dict[str, str]:
    """A message row's `id`, `room_id` or `conversation_id`, and `user_id` (from the instance alone:
    it may have been read before it was deleted)."""
    where = (
        {"room_id": f"room_{message.room_id}"} if message.room_id is not None
        else {"conversation_id": f"conv_{message.conversation_id}"}
    )
    return {"id": f"msg_{message.pk}", **where, "user_id": f"user_{message.author_id}"}


def message_data(message: Any) -> dict[str, Any]:
    """A message as stored now, in the shape REST answers and `message:new`/`message:updated` carry."""
    message = type(message).objects.get(pk=message.pk)
    return {
        **message_identity(message), "content": message.content,
        "created_at": iso(message.created_at), "updated_at": iso(message.updated_at),
        "edited_at": iso(message.edited_at) if message.edited_at else None,
    }


def message_deleted_data(message: Mapping[str, Any]) -> dict[str, Any]:
    """The data of `message:deleted`: the deleted message's identity, from `message_identity` or from
    the message as REST returned it, and when."""
    identity = ("id", "room_id", "conversation_id", "user_id")
    return {**{key: message[key] for key in identity if key in message}, "deleted_at": TIMESTAMP}


def room_data(room: Any) -> dict[str, Any]:
    """A room as stored now, as REST returns it without the viewer's `is_member`: the data of room:updated."""
    room = type(room).objects.get(pk=room.pk)
    return {
        "id": f"room_{room.pk}", "name": room.name, "topic": room.topic, "is_private": room.is_private,
        "created_by": f"user_{room.created_by_id}" if room.created_by_id else None,
        "created_at": iso(room.created_at), "updated_at": iso(room.updated_at),
        "member_count": room.memberships.count(),
    }


def room_updated_data(room: dict[str, Any]) -> dict[str, Any]:
    """The data of room:updated from the room as REST answered it, without the requester's
    `is_member` (one frame goes to every subscriber, members or not)."""
    return {key: value for key, value in room.items() if key != "is_member"}


def validation_error(**details: list[str]) -> dict[str, Any]:
    """The REST body of a 400 VALIDATION_ERROR with these field details."""
    return {"code": "VALIDATION_ERROR", "message": "The request is not valid; see details.", "details": details}


def api_client(key: str | None = None) -> Any:
    """A REST client checked against the OpenAPI document, authenticated with the API key `key`."""
    from tests.openapi import SchemaCheckedClient  # here: importing it at the top would load DRF's settings early

    client = SchemaCheckedClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# --- frames --------------------------------------------------------------------------------------


def error_frame(code: str, ref: str | int | None = None) -> dict[str, Any]:
    """The error frame, with its human-readable message left open."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": TEXT}
    if ref is not None:
        frame["ref"] = ref
    return frame


def pong_frame(ref: Any) -> dict[str, Any]:
    return {"type": "pong", "ref": ref, "server_time": TIMESTAMP}


def presence_frame(user_id: int, status: str, channel: str | None = None) -> dict[str, Any]:
    """`user:online` / `user:offline` of a user, on their own channel unless `channel` (a room's) is given."""
    return {
        "type": f"user:{status}", "channel": channel or f"user:{user_id}",
        "data": {"user_id": f"user_{user_id}", "status": status, "timestamp": TIMESTAMP},
    }


def subscribed_frame(channel: str, event: str = "*", *, ref: str | int | None = None, **extra: Any) -> dict[str, Any]:
    """The `subscribed` reply, at any stream position (`extra`: `presence`, or an exact position)."""
    frame: dict[str, Any] = {"type": "subscribed", "channel": channel, "event": event, **POSITION, **extra}
    if ref is not None:
        frame["ref"] = ref
    return frame


def message_channel(message: Any) -> str:
    return f"room:{message.room_id}" if message.room_id else f"conversation:{message.conversation_id}"


def message_frame(message: Any, event_type: str = "message:new", **position: Any) -> dict[str, Any]:
    """The `message:new` / `message:updated` frame of the row as stored now (`position`: `**POSITION`,
    an exact `offset=`/`epoch=`, or nothing for frames whose position was checked and removed)."""
    message = type(message).objects.get(pk=message.pk)
    return {"type": event_type, "channel": message_channel(message), **position, "data": message_data(message)}


def message_deleted_frame(message: Any, **position: Any) -> dict[str, Any]:
    """The `message:deleted` frame of a message (the instance as read before it was deleted)."""
    data = message_deleted_data(message_identity(message))
    return {"type": "message:deleted", "channel": message_channel(message), **position, "data": data}


def room_updated_frame(room: Any, **position: Any) -> dict[str, Any]:
    return {"type": "room:updated", "channel": f"room:{room.pk}", **position, "data": room_data(room)}


def room_deleted_frame(channel: str, room_pk: int, reason: str, **position: Any) -> dict[str, Any]:
    return {"type": "room:deleted", "channel": channel, **position, "data": {"id": f"room_{room_pk}", "reason": reason}}


# --- sockets -------------------------------------------------------------------------------------


async def assert_refused(socket: Any, code: str, close_code: int) -> dict[str, Any]:
    """An in-process handshake (tests/realtime_client.py) accepted only to say why: one error frame
    with `code`, then the close with `close_code`. The error frame."""
    accepted, _ = await socket.open()
    assert accepted
    frame = await socket.receive()
    assert frame == error_frame(code)
    assert await socket.close_code() == close_code
    return frame


async def request_when_allowed(
    request: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], frame: dict[str, Any], timeout: float = 5.0
) -> dict[str, Any]:
    """`await request(frame)` (a socket's send-and-read-the-reply) again until the connection's rate
    limit lets the frame through: its reply (a condition with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await request(frame)
        if not (reply.get("type") == "error" and reply.get("code") == "RATE_LIMITED"):
            return reply
        assert time.monotonic() < deadline, "the rate limit never let a frame through"
        await asyncio.sleep(0.05)


# --- capture at the publish boundary -------------------------------------------------------------


def capture_published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Record what is handed to the channel layer after commit, as (group, message), instead of
    sending it: tests assert the exact list at the publish boundary, with no waiting."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(publish, "_send", lambda group, message: sent.append((group, message)))
    return sent


def stream_heads() -> dict[str, tuple[str, int]]:
    """Every stream's (epoch, last offset) now."""
    return {channel: (epoch, offset) for channel, epoch, offset in Stream.objects.values_list("channel", "epoch", "last_offset")}


def event_frames(sent: list[tuple[str, dict[str, Any]]], heads: Mapping[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """The decoded frames of the events in `sent`, in publish order, without `offset`/`epoch`.

    Checks on the way: each message goes to its channel's group and agrees with its frame; each
    logged event (control messages included) takes its stream's next offset after `heads` (the
    streams' positions before the change), one after the other with no gap, under the stream's epoch.
    """
    last = dict(heads)

    def advance(channel: str, epoch: str, offset: int) -> None:
        expected = (last[channel][0], last[channel][1] + 1) if channel in last else (epoch, 1)
        assert (epoch, offset) == expected, f"{channel}: after {last.get(channel)} came {(epoch, offset)}"
        last[channel] = (epoch, offset)

    frames = []
    for group, message in sent:
        if message["type"] == publish.CONTROL_MESSAGE_TYPE:
            assert group == publish.CONTROL_GROUP
            advance(streams.CONTROL_STREAM, message["epoch"], message["offset"])
            continue
        assert message["type"] == publish.EVENT_MESSAGE_TYPE, message
        frame = json.loads(message["text"])
        assert group == parse_channel(frame["channel"]).group
        assert (message["channel"], message["event"]) == (frame["channel"], frame["type"])
        if "offset" in frame:
            epoch, offset = frame.pop("epoch"), frame.pop("offset")
            assert (message["offset"], message["epoch"]) == (offset, epoch), "layer message and frame disagree"
            advance(frame["channel"], epoch, offset)
        else:
            assert "offset" not in message, message
        frames.append(frame)
    return frames


def capture_events(
    monkeypatch: pytest.MonkeyPatch, capture_on_commit: Callable[..., AbstractContextManager[Any]]
) -> Callable[[], AbstractContextManager[list[dict[str, Any]]]]:
    """`with capture() as frames:` around a change: afterwards `frames` is the exact list of event
    frames it published on commit (see `event_frames`); nothing reaches a channel layer. Use with the
    plain `db` fixture: `capture_on_commit` is pytest-django's `django_capture_on_commit_callbacks`,
    which runs the on-commit callbacks of the test's transaction when the block ends."""
    sent = capture_published(monkeypatch)

    @contextmanager
    def capture() -> Iterator[list[dict[str, Any]]]:
        frames: list[dict[str, Any]] = []
        heads = stream_heads()
        start = len(sent)
        with capture_on_commit(execute=True):
            yield frames
        frames.extend(event_frames(sent[start:], heads))

    return capture
