"""An echo bot that survives server restarts: it answers every message in a room with its echo.

    KEY=rc_… python clients/python/examples/echo_bot.py --room 1 [--url http://127.0.0.1:8000]

The client reconnects and resubscribes by itself; after a restart the bot gets the messages it
missed, in order, and answers them too. If the server cannot replay them (NotRecovered), it
fetches the missed ones over REST with `?after=`.
"""
import argparse
import asyncio
import json
import os
import urllib.request
from typing import Any

from retrochat_client import Client, Event, NotRecovered, StateChange


def rest(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's HTTP base URL (not the WebSocket URL)")
    parser.add_argument("--room", required=True)
    args = parser.parse_args()
    key = os.environ["KEY"]
    ws_url = args.url.replace("http", "ws", 1) + "/v1/realtime"

    def show(change: StateChange) -> None:
        print(f"[{change.state.value}]" + (f" close {change.close_code}" if change.close_code else "")
              + (f", retrying in {change.retry_in:.1f}s" if change.retry_in is not None else ""), flush=True)

    async def answer(message: dict[str, Any]) -> None:
        if message["user_id"] == me or message["content"].startswith("echo: "):
            return
        await asyncio.to_thread(rest, args.url, key, "POST", f"/v1/rooms/{args.room}/messages",
                                {"content": f"echo: {message['content']}"[:4000]})

    async with Client(ws_url, api_key=key, on_state=show) as client:
        me = client.user_id
        sub = await client.subscribe(f"room:{args.room}", event="message:new")
        print(f"[subscribed] room:{args.room}", flush=True)  # from here on, no message of the room is missed
        last_seen: str | None = None
        async for item in sub:
            if isinstance(item, NotRecovered):
                # Too much was missed to replay: catch up over REST, oldest first.
                path = f"/v1/rooms/{args.room}/messages?limit=100" + (f"&after={last_seen}" if last_seen else "")
                for message in (await asyncio.to_thread(rest, args.url, key, "GET", path))["results"]:
                    last_seen = message["id"]
                    await answer(message)
            elif isinstance(item, Event):
                last_seen = item.data["id"]
                await answer(item.data)


if __name__ == "__main__":
    asyncio.run(main())
