"""Peer baseline "pysocketio": python-socketio's AsyncServer as an ASGI app with AsyncRedisManager,
written as the python-socketio docs show it (rooms with `enter_room`, `emit(..., room=...)`), served
by uvicorn with uvloop (and the same HTTP and WebSocket implementations as RetroChat's default):

    REDIS_URL=redis://127.0.0.1:6379/12 uvicorn bench.baselines.pysocketio.app:app --loop uvloop --port 9401

socket.io: the client emits "subscribe" with a channel name and gets the acknowledgement
{"type":"subscribed","channel":C}; events are the "message:new" event with
{"type":"message:new","channel":C,"data":{"content":…}}. HTTP: `POST /publish/<channel>` with
{"content": …} emits one event to the room (the bare baseline has the same endpoint).
"""
import json
import os

import socketio

mgr = socketio.AsyncRedisManager(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12"), channel="bench-pysocketio")
sio = socketio.AsyncServer(async_mode="asgi", client_manager=mgr)


@sio.event
async def subscribe(sid, channel):
    await sio.enter_room(sid, channel)
    return {"type": "subscribed", "channel": channel}


async def publish_app(scope, receive, send):
    """`POST /publish/<channel>`: everything that is not socket.io."""
    if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/publish/"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    channel = scope["path"].removeprefix("/publish/")
    await sio.emit("message:new", {"type": "message:new", "channel": channel, "data": json.loads(body)}, room=channel)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


app = socketio.ASGIApp(sio, other_asgi_app=publish_app)
