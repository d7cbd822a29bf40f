"""docs/asyncapi.yaml: a valid AsyncAPI 3.0.0 document that describes every frame type
of realtime/protocol.py. That live frames match it is checked by tests/live.py on every frame."""
import json
from pathlib import Path

import jsonschema
import pytest

from realtime import channel_names, protocol
from tests import asyncapi

OFFICIAL_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json"
SERVER_CONTROL_TYPES = {"connected", "subscribed", "unsubscribed", "subscriptions", "pong", "error"}
ERROR_CODES = {
    value for name, value in vars(protocol).items()
    if name.isupper() and isinstance(value, str) and value == name and not name.startswith(("ALL_", "CLOSE_"))
}


def test_the_document_is_valid_against_the_official_asyncapi_3_schema():
    schema = json.loads(OFFICIAL_SCHEMA.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(asyncapi.document())]
    assert errors == []


def test_every_client_frame_type_is_described():
    assert set(asyncapi.validators(asyncapi.CLIENT)) == set(protocol.CLIENT_TYPES)


def test_every_server_frame_and_event_type_is_described():
    event_types = {t for kind in channel_names.kinds() for types in kind.categories.values() for t in types}
    assert set(asyncapi.validators(asyncapi.SERVER)) == SERVER_CONTROL_TYPES | event_types


def test_the_error_code_enum_is_the_protocols():
    assert set(asyncapi.document()["components"]["schemas"]["ErrorCode"]["enum"]) == ERROR_CODES


@pytest.mark.parametrize("frame", [
    {"type": "pong", "ref": "4"},  # no server_time
    {"type": "publish", "channel": "room:1"},  # a type nobody describes
    {"type": "subscribed", "channel": "room:1", "event": "*", "offset": 1, "epoch": "e", "presence": {"online": ["bob"]}},
    {"type": "error", "code": "TEAPOT", "message": "no"},
    {"type": "user:online", "channel": "user:1", "offset": 3, "epoch": "e",
     "data": {"user_id": "user_1", "status": "online", "timestamp": "2026-01-01T00:00:00Z"}},  # presence has no offset
])
def test_a_frame_the_document_does_not_allow_fails_the_check(frame):
    with pytest.raises(AssertionError):
        asyncapi.check_server_frame(frame)


def test_client_frames_are_checked_in_their_own_direction():
    asyncapi.check_client_frame({"type": "subscribe", "channel": "room:room_7", "event": "message", "since": {"offset": 0, "epoch": "k3F9"}, "ref": 1})
    with pytest.raises(AssertionError):
        asyncapi.check_client_frame({"type": "pong", "server_time": "2026-01-01T00:00:00Z"})
    with pytest.raises(AssertionError):
        asyncapi.check_client_frame({"type": "subscribe", "channel": "room:7", "since": {"offset": -1, "epoch": "k3F9"}})
