"""Baseline "bare": a plain `websockets` server broadcasting pre-encoded text; no Django, no auth,
no channel layer. The ceiling for Python on this machine.

    python bench/baselines/bare/server.py --port 9101 --publish-port 9102

WebSocket: `{"type":"subscribe","channel":C}` → `{"type":"subscribed","channel":C}`; events are
`{"type":"message:new","channel":C,"data":{"content":…}}`. HTTP: `POST /publish/<channel>` with
`{"content": …}` broadcasts one event to the channel's subscribers.
"""
import argparse
import asyncio
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: dict[str, set] = {}


async def handle(connection: ServerConnection) -> None:
    joined: list[str] = []
    try:
        async for raw in connection:
            frame = json.loads(raw)
            if frame.get("type") == "subscribe":
                channel = frame["channel"]
                subscribers.setdefault(channel, set()).add(connection)
                joined.append(channel)
                await connection.send(json.dumps({"type": "subscribed", "channel": channel}))
    finally:
        for channel in joined:
            subscribers.get(channel, set()).discard(connection)


async def publish_endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            channel = request_line.split()[1].decode().removeprefix("/publish/")
            text = json.dumps({"type": "message:new", "channel": channel, "data": json.loads(body)})
            broadcast(subscribers.get(channel, ()), text)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--publish-port", type=int, required=True)
    args = parser.parse_args()
    publisher = await asyncio.start_server(publish_endpoint, "127.0.0.1", args.publish_port)
    async with serve(handle, "127.0.0.1", args.port, compression=None, max_queue=None), publisher:
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
