"""The shortest end-to-end path: a real server, a real WebSocket client, a REST post."""
import pytest

from tests import factories
from tests.live import recv_json, request_reply
from tests.support import POSITION, subscribed_frame


@pytest.fixture
def ada_with_room(transactional_db):
    ada = factories.make_user("ada")
    return ada, factories.make_key(ada), factories.make_room(ada)


async def test_message_posted_over_rest_arrives_over_websocket(server, ada_with_room):
    ada, key, room = ada_with_room
    async with server.connect(key) as ws:
        connected = await recv_json(ws)
        assert connected["type"] == "connected"
        assert connected["user_id"] == f"user_{ada.pk}"
        reply = await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}", "ref": "1"})
        assert reply == subscribed_frame(f"room:{room.pk}", ref="1")
        status, body = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", key, {"content": "hi"})
        assert status == 201
        assert await recv_json(ws) == {"type": "message:new", "channel": f"room:{room.pk}", **POSITION, "data": body}


async def test_the_server_declines_permessage_deflate(server, ada_with_room):
    # Compressing would cost once per recipient for the same pre-encoded frame (retrochat/serve.py).
    _, key, _ = ada_with_room
    async with server.connect(key, compression="deflate") as ws:
        assert (await recv_json(ws))["type"] == "connected"
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
