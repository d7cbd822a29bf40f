"""One loader process of the soak (soak/run.py): many `retrochat_client.Client`s on one asyncio loop,
each subscribed to one room, checking what it receives as the application would see it.

Talks to the driver in JSON lines: its first stdin line is the plan ({"url": [...], "clients":
[[key, channel, server index], ...], ...}); then commands `{"cmd": "drop", "fraction": f}` (abort the
TCP connection of that share of the clients, as a lost network would) and `{"cmd": "finish",
"heads": {channel: offset}, "timeout": s}` (wait until every client has every event up to the head,
report, close). It answers `{"ready": n}` once every client is subscribed, `{"dropped": n}`, and
`{"result": {...}}`.

The per-client check: the events of the subscription, in the order the application gets them, must
carry the offsets head+1, head+2, … (head: the `subscribed` position) with no gap, repeat or
reordering, up to the final head. A `NotRecovered` is a failure, unless more events were missing
than the server may replay (RETROCHAT_RECOVERY_MAX_EVENTS): then the skipped offsets are counted
apart, as a client would refetch them over REST.
"""
import asyncio
import json
import random
import sys
import threading
import time
from typing import Any

from retrochat_client import Client, ConnectionState, Event, NotRecovered

CONNECT_CONCURRENCY = 50


class Checked:
    """One client and what it has seen."""

    def __init__(self, key: str, channel: str, url: str, backoff_cap: float, max_events: int) -> None:
        self.channel = channel
        self.max_events = max_events
        self.connections = 0
        self.client = Client(url, api_key=key, backoff_cap=backoff_cap, on_state=self._on_state)
        self.epoch: str | None = None
        self.start_offset = 0
        self.next_offset = 0
        self.received = 0
        self.failures: list[str] = []
        self.skipped_beyond_limit = 0
        self.not_recovered = 0
        self.progress = asyncio.Event()
        self.task: asyncio.Task | None = None

    def _on_state(self, change: Any) -> None:
        if change.state is ConnectionState.CONNECTED:
            self.connections += 1

    @property
    def last(self) -> int:
        return self.next_offset - 1

    async def start(self) -> None:
        await self.client.connect()
        sub = await self.client.subscribe(self.channel)
        self.start_offset = sub.position.offset
        self.epoch, self.next_offset = sub.position.epoch, sub.position.offset + 1
        self.task = asyncio.create_task(self._consume(sub))

    async def _consume(self, sub: Any) -> None:
        try:
            async for item in sub:
                if isinstance(item, Event) and item.offset is not None:
                    self._event(item)
                elif isinstance(item, NotRecovered):
                    self._not_recovered(item)
                self.progress.set()
        except Exception as exc:  # the subscription ended on an error: that is a finding, not a crash
            self.failures.append(f"subscription ended: {exc!r}")

    def _event(self, event: Event) -> None:
        if event.epoch != self.epoch:
            self.failures.append(f"epoch {event.epoch} instead of {self.epoch} at offset {event.offset}")
            self.epoch = event.epoch
        if event.offset == self.next_offset:
            self.received += 1
        elif event.offset < self.next_offset:
            self.failures.append(f"offset {event.offset} again or out of order (expected {self.next_offset})")
            return
        else:
            self.failures.append(f"gap: offsets {self.next_offset}..{event.offset - 1} never arrived")
        self.next_offset = event.offset + 1

    def _not_recovered(self, item: NotRecovered) -> None:
        self.not_recovered += 1
        missing = item.position.offset - self.last
        if item.position.epoch == self.epoch and missing > self.max_events:
            self.skipped_beyond_limit += missing
        else:
            self.failures.append(f"not recovered at {self.last} (head {item.position.offset}, {missing} missing)")
        self.epoch, self.next_offset = item.position.epoch, item.position.offset + 1

    def drop(self) -> bool:
        # The client offers no way to lose its network; aborting its socket's transport is what a
        # lost TCP connection looks like to both ends (no close frame, no FIN handshake).
        conn = self.client._conn
        if conn is None:
            return False
        conn.ws.transport.abort()
        return True


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(commands.put_nowait, {"cmd": "eof"})

    threading.Thread(target=read_stdin, daemon=True).start()
    plan = await commands.get()
    clients = [
        Checked(key, channel, plan["urls"][server], plan["backoff_cap"], plan["max_events"])
        for key, channel, server in plan["clients"]
    ]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def start(checked: Checked) -> None:
        async with gate:
            await checked.start()

    await asyncio.gather(*(start(c) for c in clients))
    emit({"ready": len(clients)})
    while True:
        command = await commands.get()
        if command["cmd"] == "drop":
            chosen = random.sample(clients, int(len(clients) * command["fraction"]))
            emit({"dropped": sum(c.drop() for c in chosen)})
        elif command["cmd"] == "finish":
            await finish(clients, command["heads"], command["timeout"])
            return
        elif command["cmd"] == "eof":
            return


async def finish(clients: list[Checked], heads: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(c.last < heads[c.channel] for c in clients):
        await asyncio.sleep(0.2)
    behind = [c for c in clients if c.last < heads[c.channel]]
    for c in behind:
        c.failures.append(f"stopped at offset {c.last} of {heads[c.channel]}")
    failing = [c for c in clients if c.failures]
    result = {
        "clients": len(clients),
        "events_received": sum(c.received for c in clients),
        "events_expected": sum(heads[c.channel] - c.start_offset - c.skipped_beyond_limit for c in clients),
        "duplicates_dropped_by_client": sum(s.duplicates_dropped for c in clients for s in c.client.subscriptions),
        "reconnections": sum(max(0, c.connections - 1) for c in clients),
        "not_recovered": sum(c.not_recovered for c in clients),
        "skipped_beyond_limit": sum(c.skipped_beyond_limit for c in clients),
        "failing_clients": len(failing),
        "failures": [f"{c.channel}: {failure}" for c in failing[:20] for failure in c.failures[:3]],
    }
    emit({"result": result})
    await asyncio.gather(*(c.client.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
