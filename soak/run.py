"""`make soak`: two server processes on PostgreSQL and Redis, thousands of clients, steady publishing
and faults on a schedule, for SOAK_MINUTES (default 10); rewrites docs/reliability.md.

What it asserts:
- per client, every event of its room arrived exactly once, in offset order, recovery after every
  fault included (soak/loader.py); a NotRecovered is a failure unless the gap exceeded
  RETROCHAT_RECOVERY_MAX_EVENTS;
- server memory (RSS) and open file descriptors are flat after warm-up: the median of the last third
  of the measured window is within the tolerance of the median of its first third (see TOLERANCES).

Faults, at fixed fractions of the run: server A stopped with SIGTERM and started again, server B
killed with SIGKILL and started again (both before warm-up ends, so that the measured window sees one
incarnation of each); then, alternating, a share of the clients lose their TCP connections and Redis
is cut off for REDIS_OUTAGE_SECONDS (a TCP proxy between the servers and Redis, tests/proxy.py:
the machine's Redis itself is never touched).

Environment: SOAK_MINUTES (10; fractions allowed), SOAK_CLIENTS (2000), SOAK_ROOMS (4), SOAK_RATE
(events per second, all rooms together; 4), SOAK_LOADERS (client processes; one per 1000 clients),
SOAK_DROP_FRACTION (0.1), SOAK_DATABASE_URL (postgres://postgres@127.0.0.1:5432/retrochat_soak),
SOAK_REDIS_URL (redis://127.0.0.1:6379/9; keys and channels under the prefix `retrochat-soak`),
SOAK_REPORT (docs/reliability.md).

`python -m soak.run prepare` creates the database if it does not exist (the Makefile then migrates it).
"""
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.proxy import TcpProxy  # noqa: E402  (the fault tests' proxy)

MINUTES = float(os.environ.get("SOAK_MINUTES", "10"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "2000"))
ROOMS = int(os.environ.get("SOAK_ROOMS", "4"))
RATE = float(os.environ.get("SOAK_RATE", "4"))
LOADERS = int(os.environ.get("SOAK_LOADERS", "0")) or max(1, math.ceil(CLIENTS / 1000))
DROP_FRACTION = float(os.environ.get("SOAK_DROP_FRACTION", "0.1"))
DATABASE_URL = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/retrochat_soak")
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/9")
REDIS_PREFIX = "retrochat-soak"
REPORT = Path(os.environ.get("SOAK_REPORT", ROOT / "docs" / "reliability.md"))

CLIENTS_PER_USER = 20  # under RETROCHAT_MAX_CONNECTIONS_PER_USER's default of 50, with room for reconnects
REDIS_OUTAGE_SECONDS = 5.0
BACKOFF_CAP = 10.0  # the client's reconnect backoff cap (30 s by default), so that short runs settle
SAMPLE_SECONDS = 1.0
SETTLE_AFTER_RESTART = 15.0  # clients of a restarted server are back within this (backoff cap + start)
FINISH_TIMEOUT = 90.0
# Flatness: last third's median ≤ first third's × (1 + relative) + absolute. Justified in the report.
TOLERANCES = {"rss": (0.05, 8 * 1024 * 1024), "fds": (0.02, 16)}
SERVER_ENV = {
    "RETROCHAT_WRITE_THROTTLE": "off",
    "RETROCHAT_REDIS_PREFIX": REDIS_PREFIX,
    "LOG_LEVEL": "WARNING",
}
MAX_EVENTS = 1000  # RETROCHAT_RECOVERY_MAX_EVENTS, the server's default


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- setup -------------------------------------------------------------------------------------
def prepare_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def clean_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


def populate() -> tuple[list[tuple[str, str]], str, list[int]]:
    """A fresh database: users with keys (CLIENTS_PER_USER clients each), a poster, public rooms.
    Returns (key, channel) per client, the poster's key and the room ids."""
    from django.core.management import call_command

    from rooms import services as rooms
    from users import services as users

    call_command("flush", interactive=False, verbosity=0)
    poster = users.user_create(username="soak-poster", display_name="Soak poster")
    _, poster_key = users.api_key_create(user=poster, name="soak")
    room_ids = [rooms.room_create(creator=poster, name=f"soak-{i}", is_private=False).pk for i in range(ROOMS)]
    plan = []
    key = ""
    for index in range(CLIENTS):
        if index % CLIENTS_PER_USER == 0:
            user = users.user_create(username=f"soak-{index // CLIENTS_PER_USER}", display_name="Soak")
            _, key = users.api_key_create(user=user, name="soak")
        plan.append((key, f"room:{room_ids[index % ROOMS]}"))
    return plan, poster_key, room_ids


def heads(room_ids: list[int]) -> dict[str, int]:
    from realtime import streams

    names = [f"room:{pk}" for pk in room_ids]
    found = streams.positions(names)
    return {name: found[name].offset if name in found else 0 for name in names}


# --- servers -----------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    incarnations: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "retrochat.serve"], cwd=ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.incarnations.append(self.process.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.process.returncode}; see {self.log_path}")
            if ready(self.url):
                return
            time.sleep(0.2)
        raise RuntimeError(f"server {self.name} did not become ready; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def scrape(url: str) -> dict[str, float]:
    values: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return values
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def sample(pid: int) -> tuple[int, int] | None:
    """(RSS bytes, open file descriptors) of a process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


# --- the run -----------------------------------------------------------------------------------
class Loader:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def receive(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"loader {self.process.pid} exited with {await self.process.wait()}")
        return json.loads(line)


@dataclass
class Figures:
    published: int = 0
    publish_failures: int = 0
    dropped: int = 0  # client connections aborted, all inside the measured window
    faults: list[tuple[float, str]] = field(default_factory=list)
    samples: dict[str, list[tuple[float, int, int, int]]] = field(default_factory=dict)  # server → (t, pid, rss, fds)


async def publish(servers: list[Server], poster_key: str, room_ids: list[int], stop: asyncio.Event, figures: Figures) -> None:
    """SOAK_RATE posts per second over all rooms, through the servers in turn; a refused or failed
    post is tried on the other server (the outcome of a post cut off mid-way is left to the log)."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="soak-post")
    loop = asyncio.get_running_loop()

    def post(url: str, room: int, n: int) -> bool:
        request = urllib.request.Request(
            f"{url}/v1/rooms/{room}/messages", data=json.dumps({"content": f"soak {n}"}).encode(), method="POST",
            headers={"Authorization": f"Bearer {poster_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 201
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    async def one(n: int) -> None:
        room = room_ids[n % len(room_ids)]
        for attempt in range(2):
            if await loop.run_in_executor(pool, post, servers[(n + attempt) % len(servers)].url, room, n):
                figures.published += 1
                return
        figures.publish_failures += 1

    pending: set[asyncio.Task] = set()
    n = 0
    started = time.monotonic()
    while not stop.is_set():
        task = asyncio.create_task(one(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
    await asyncio.gather(*pending)
    pool.shutdown()


async def run() -> int:
    duration = MINUTES * 60
    workdir = Path(tempfile.mkdtemp(prefix="retrochat-soak-"))
    log(f"{CLIENTS} clients in {LOADERS} loader(s), {ROOMS} rooms, {RATE}/s for {MINUTES} min; logs in {workdir}")
    redis_parts = urlsplit(REDIS_URL)
    proxy = TcpProxy(redis_parts.hostname or "127.0.0.1", redis_parts.port or 6379)
    servers: list[Server] = []
    loaders: list[Loader] = []
    figures = Figures()
    try:
        proxy.__enter__()
        proxied_redis = urlunsplit(redis_parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
        os.environ.update({"DATABASE_URL": DATABASE_URL, "REDIS_URL": proxied_redis, "RETROCHAT_REDIS_PREFIX": REDIS_PREFIX})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
        import django

        django.setup()
        clean_redis()
        plan, poster_key, room_ids = await asyncio.to_thread(populate)
        env = {**os.environ, **SERVER_ENV, "HOST": "127.0.0.1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        for name in ("A", "B"):
            port = free_port()
            servers.append(Server(name, port, {**env, "PORT": str(port)}, workdir / f"server-{name}.log"))
        for server in servers:
            await asyncio.to_thread(server.start)
        log(f"servers A on {servers[0].port}, B on {servers[1].port}; Redis through the proxy on {proxy.port}")

        t0 = time.monotonic()
        for index in range(LOADERS):
            share = [[key, channel, i % 2] for i, (key, channel) in enumerate(plan) if i % LOADERS == index]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "soak.loader", cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=(workdir / f"loader-{index}.log").open("wb"),
            )
            loader = Loader(process)
            loaders.append(loader)
            await loader.send({"urls": [s.url.replace("http", "ws") + "/v1/realtime" for s in servers], "clients": share,
                               "backoff_cap": BACKOFF_CAP, "max_events": MAX_EVENTS})
        for loader in loaders:
            await loader.receive(timeout=120 + CLIENTS / 10)
        log(f"{CLIENTS} clients connected and subscribed in {time.monotonic() - t0:.0f} s")

        stop_publishing = asyncio.Event()
        start = time.monotonic()
        publisher = asyncio.create_task(publish(servers, poster_key, room_ids, stop_publishing, figures))
        measuring_from: list[float] = []

        async def sampler() -> None:
            while not stop_publishing.is_set():
                now = time.monotonic() - start
                for server in servers:
                    pid = server.pid
                    taken = sample(pid) if pid else None
                    if taken:
                        figures.samples.setdefault(server.name, []).append((now, pid, *taken))
                await asyncio.sleep(SAMPLE_SECONDS)

        sampling = asyncio.create_task(sampler())

        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, start + fraction * duration - time.monotonic()))

        async def fault(description: str) -> None:
            figures.faults.append((time.monotonic() - start, description))
            log(description)

        async def drop() -> None:
            await fault(f"{DROP_FRACTION:.0%} of the clients lose their TCP connection")
            for loader in loaders:
                await loader.send({"cmd": "drop", "fraction": DROP_FRACTION})
            for loader in loaders:
                figures.dropped += (await loader.receive(timeout=30))["dropped"]

        async def redis_outage() -> None:
            await fault(f"Redis cut off for {REDIS_OUTAGE_SECONDS:.0f} s")
            await asyncio.to_thread(proxy.down)
            await asyncio.sleep(REDIS_OUTAGE_SECONDS)
            await asyncio.to_thread(proxy.up)

        async def restart(server: Server, sig: signal.Signals) -> None:
            await fault(f"server {server.name} stopped with {sig.name} and started again")
            await asyncio.to_thread(server.stop, sig)
            await asyncio.to_thread(server.start)

        await at(0.08)
        await restart(servers[0], signal.SIGTERM)
        await at(0.18)
        await restart(servers[1], signal.SIGKILL)
        warm = max(0.30 * duration, time.monotonic() - start + SETTLE_AFTER_RESTART)
        measuring_from.append(warm)
        later = [drop, redis_outage, drop, redis_outage, drop, redis_outage]
        for index, action in enumerate(later):
            fraction = (warm + (index + 0.5) * (duration - warm) / len(later)) / duration
            await at(fraction)
            await action()
        await at(1.0)
        stop_publishing.set()
        await publisher
        await sampling
        final = await asyncio.to_thread(heads, room_ids)
        log(f"published {figures.published} events ({figures.publish_failures} posts failed on both servers); heads {final}")
        metrics = {server.name: await asyncio.to_thread(scrape, server.url) for server in servers}
        for loader in loaders:
            await loader.send({"cmd": "finish", "heads": final, "timeout": FINISH_TIMEOUT})
        results = [(await loader.receive(timeout=FINISH_TIMEOUT + 60))["result"] for loader in loaders]
        for loader in loaders:
            await loader.process.wait()
        outcome = evaluate(results, figures, measuring_from[0], duration)
        write_report(outcome, results, figures, metrics, final, duration, measuring_from[0])
        log(f"{'PASS' if outcome['passed'] else 'FAIL'}; report in {REPORT}")
        for line in outcome["problems"]:
            log(f"  {line}")
        return 0 if outcome["passed"] else 1
    finally:
        for loader in loaders:
            if loader.process.returncode is None:
                loader.process.kill()
                await loader.process.wait()
        for server in servers:
            server.stop()
        proxy.close()


def flatness(samples: list[tuple[float, int, int, int]], since: float, until: float) -> dict[str, Any]:
    window = [s for s in samples if since <= s[0] <= until]
    third = (until - since) / 3
    first = [s for s in window if s[0] < since + third]
    last = [s for s in window if s[0] >= until - third]
    pids = {s[1] for s in window}
    figures: dict[str, Any] = {"pids": sorted(pids), "samples": len(window)}
    for index, name in ((2, "rss"), (3, "fds")):
        a = statistics.median(s[index] for s in first) if first else float("nan")
        b = statistics.median(s[index] for s in last) if last else float("nan")
        relative, absolute = TOLERANCES[name]
        figures[name] = {"first": a, "last": b, "limit": a * (1 + relative) + absolute, "flat": b <= a * (1 + relative) + absolute}
    figures["one_process"] = len(pids) == 1
    return figures


def evaluate(results: list[dict[str, Any]], figures: Figures, since: float, until: float) -> dict[str, Any]:
    problems = []
    failing = sum(r["failing_clients"] for r in results)
    if failing:
        problems.append(f"{failing} client(s) missed, repeated or reordered events:")
        problems.extend(f for r in results for f in r["failures"])
    received, expected = sum(r["events_received"] for r in results), sum(r["events_expected"] for r in results)
    if received != expected:
        problems.append(f"{received} events received, {expected} expected")
    resources = {name: flatness(samples, since, until) for name, samples in figures.samples.items()}
    for name, found in resources.items():
        if not found["one_process"]:
            problems.append(f"server {name} changed process during the measured window: {found['pids']}")
        for kind in ("rss", "fds"):
            if not found[kind]["flat"]:
                problems.append(f"server {name} {kind} grew: {found[kind]['first']:.0f} → {found[kind]['last']:.0f} (limit {found[kind]['limit']:.0f})")
    return {"passed": not problems, "problems": problems, "resources": resources, "received": received, "expected": expected}


def write_report(outcome: dict[str, Any], results: list[dict[str, Any]], figures: Figures, metrics: dict[str, dict[str, float]],
                 final: dict[str, int], duration: float, since: float) -> None:
    total = {key: sum(r[key] for r in results) for key in ("clients", "reconnections", "not_recovered", "skipped_beyond_limit", "duplicates_dropped_by_client", "failing_clients")}

    def counter(name: str) -> str:
        return " / ".join(f"{sum(v for k, v in metrics[s].items() if k == name or k.startswith(name + '{')):.0f}" for s in sorted(metrics))

    mib = 1024 * 1024
    rows = [
        ("result", "**PASS**" if outcome["passed"] else "**FAIL**"),
        ("duration", f"{duration / 60:g} min ({since:.0f} s warm-up, then {duration - since:.0f} s measured)"),
        ("server processes", "2 (uvicorn), PostgreSQL, Redis through a TCP proxy"),
        ("clients (subscribed, `retrochat_client`)", f"{total['clients']} in {LOADERS} loader process(es), {ROOMS} rooms"),
        ("events published (REST)", f"{figures.published} at {RATE:g}/s ({figures.publish_failures} posts failed on both servers)"),
        ("events checked at clients (expected = received)", f"{outcome['expected']} = {outcome['received']}"),
        ("clients with a missing, repeated or reordered event", str(total["failing_clients"])),
        ("reconnections (all causes)", f"{total['reconnections']} ({figures.dropped} after dropped connections, the rest after restarts)"),
        ("NotRecovered (failures unless beyond the replay limit)", f"{total['not_recovered']} ({total['skipped_beyond_limit']} events beyond the limit)"),
        ("duplicates the client dropped by offset", str(total["duplicates_dropped_by_client"])),
    ]
    for name, found in sorted(outcome["resources"].items()):
        rss, fds = found["rss"], found["fds"]
        rows.append((f"server {name} RSS, first → last third (limit)", f"{rss['first'] / mib:.1f} → {rss['last'] / mib:.1f} MiB ({rss['limit'] / mib:.1f}) {'flat' if rss['flat'] else 'GREW'}"))
        rows.append((f"server {name} open fds, first → last third (limit)", f"{fds['first']:.0f} → {fds['last']:.0f} ({fds['limit']:.0f}) {'flat' if fds['flat'] else 'GREW'}"))
    servers_label = " / ".join(sorted(metrics))
    for label, name in (("recoveries (recovered)", 'retrochat_recoveries_total{outcome="recovered"}'),
                        ("recoveries (not recovered)", 'retrochat_recoveries_total{outcome="not_recovered"}'),
                        ("events replayed", "retrochat_events_replayed_total"), ("gap fills", "retrochat_gap_fills_total"),
                        ("channel-layer errors", "retrochat_channel_layer_errors_total"),
                        ("slow-consumer closes", "retrochat_slow_consumer_closes_total"), ("events delivered", "retrochat_events_delivered_total")):
        rows.append((f"{label}, server {servers_label} (last incarnation, /metrics)", counter(name)))
    # What the margins would detect (per server, deliveries and reconnections between the two medians).
    between = (duration - since) / duration * 2 / 3 / 2
    margins = [found["rss"]["limit"] - found["rss"]["first"] for found in outcome["resources"].values()] or [0.0]
    fd_margins = [found["fds"]["limit"] - found["fds"]["first"] for found in outcome["resources"].values()] or [0.0]
    leak_per_delivery = max(margins) / max(1.0, outcome["received"] * between)
    reconnections_between = figures.dropped * 2 / 3 / 2  # drops are spread evenly over the window
    leak_per_reconnection = max(margins) / max(1.0, reconnections_between)
    fd_per = max(1.0, reconnections_between) / max(fd_margins)
    faults = "\n".join(f"| {t:.0f} s | {what} |" for t, what in figures.faults)
    rss_rel, rss_abs = TOLERANCES["rss"]
    fds_rel, fds_abs = TOLERANCES["fds"]
    text = f"""# Reliability: soak run

Generated by `make soak` (soak/run.py) on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC; do not edit by hand.
Settings: `SOAK_MINUTES={MINUTES:g} SOAK_CLIENTS={CLIENTS} SOAK_ROOMS={ROOMS} SOAK_RATE={RATE:g}`.

| figure | value |
| --- | --- |
{chr(10).join(f"| {k} | {v} |" for k, v in rows)}

## Faults injected

| at | fault |
| --- | --- |
{faults}

## What was checked, and how

Two server processes (uvicorn) share PostgreSQL (`retrochat_soak`) and Redis (database 9, prefix
`{REDIS_PREFIX}`), Redis reached through a TCP proxy that the run cuts to simulate an outage. Each
client is the project's Python client (`retrochat_client`), subscribed to one room on one server;
many clients share an asyncio loop in a few loader processes. A poster sends {RATE:g} messages per
second over REST, to the servers in turn (to the other one when a post fails).

Every client checks what its application receives: offsets from its `subscribed` position up to the
final head of its room's stream (read from the database after publishing stops), each exactly once
and in order, across every reconnection (the client resubscribes with `since` and the server
replays). A `NotRecovered` counts as a failure unless more events were missing than
`RETROCHAT_RECOVERY_MAX_EVENTS` ({MAX_EVENTS}). The client drops duplicates by offset; how many it
dropped is shown above, as a figure, since the application never sees them.

The server restarts (SIGTERM, then SIGKILL) happen before warm-up ends, so that the measured window
sees one process per server; client drops and Redis outages continue inside it, so that the paths
most likely to leak (reconnects, replays, gap fills, Redis reconnection) run while memory is
watched. RSS and open file descriptors (`/proc/PID/status`, `/proc/PID/fd`) are sampled every
{SAMPLE_SECONDS:g} s; the median of the last third of the window must not exceed the median of the
first third by more than {rss_rel:.0%} + {rss_abs // (1024 * 1024)} MiB (RSS) or {fds_rel:.0%} + {fds_abs} (fds).
Why those margins: CPython and glibc keep freed memory for reuse rather than returning it, so RSS
moves in steps of arenas when a fault makes many clients reconnect and replay at once; the medians
absorb a step, the margin absorbs the allocator's rounding. What they still catch, from this run's
own numbers (about two thirds of the window lie between the two medians, per server): a leak of
{leak_per_delivery:.0f} bytes or more per delivered event, or {leak_per_reconnection / 1024:.0f} KiB or more per
reconnection, or one file descriptor leaked per {fd_per:.0f} reconnections; a longer run (the default is
10 minutes) catches proportionally smaller leaks. The fd margin covers the sockets of clients that
are between a drop and their reconnection when a sample is taken.

Figures from `/metrics` are each server's last process only (counters restart with the process).
"""
    if outcome["problems"]:
        text += "\n## Problems\n\n" + "\n".join(f"- {p}" for p in outcome["problems"]) + "\n"
    REPORT.write_text(text)


def main() -> int:
    if sys.argv[1:] == ["prepare"]:
        prepare_database()
        return 0
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
