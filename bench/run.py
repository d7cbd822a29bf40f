"""`make bench`: the project and two baselines, on this machine, in one run, with one load generator.

Servers (each started fresh, one process unless said otherwise, Redis channel layer):
- project: `python -m retrochat.serve` (uvicorn, the default; and daphne), events published by
  `POST /v1/rooms/{id}/messages` (authentication, a database write, publish on commit);
- naive: the Channels tutorial design (bench/baselines/naive/app.py) under daphne;
- bare: a `websockets` server broadcasting pre-encoded text (bench/baselines/bare/server.py).

The load generator (bench/loadgen/loadgen.js, Node `ws`) measures, per server: deliveries per
second in a burst, latency p50/p99 at a fixed publish rate, new connections per second, and
server RSS per open subscribed connection. Results go to bench/results/latest.json, and
bench/report.py turns them into docs/benchmarks.md and docs/benchmarks.png.

Environment: REDIS_URL (default redis://127.0.0.1:6379/12), BENCH_QUICK=1 for a smoke run.
"""
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "bench" / "loadgen" / "loadgen.js"
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
QUICK = os.environ.get("BENCH_QUICK") == "1"

SUBSCRIBER_COUNTS = [100, 1000] if QUICK else [100, 1000, 5000]
MAIN_SUBSCRIBERS = 1000
BURST_DELIVERIES = 20_000 if QUICK else 100_000
NAIVE_BURST_DELIVERIES = 10_000 if QUICK else 30_000
LATENCY_RATE = 10  # messages per second: 10,000 deliveries/s at 1,000 subscribers
LATENCY_SECONDS = 3 if QUICK else 10
CONNECT_COUNT = 500 if QUICK else 2000
HOLD_COUNT = 1000 if QUICK else 10_000
NAIVE_HOLD_COUNT = 500 if QUICK else 2000  # the naive design subscribes in Redis per connection: slow to open


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    total = 0
    for proc in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class Server:
    """One server under test: a process group started with `command`, stopped at exit."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, config: dict[str, Any]) -> None:
        self.name, self.command, self.env, self.port, self.config = name, command, env, port, config
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{self.name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def loadgen(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    merged = {**config, **overrides}
    out = subprocess.run(["node", str(LOADGEN), json.dumps(merged)], capture_output=True, text=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise RuntimeError(f"loadgen: {result['error']}")
    return result


def hold_and_measure_rss(server: Server, count: int) -> dict[str, Any]:
    """Server RSS growth per open subscribed connection (baseline taken after one warm-up socket)."""
    assert server.process is not None
    loadgen(server.config, mode="connect", clients=1, concurrency=1)
    before = rss_kib(server.process.pid)
    holder = subprocess.Popen(
        ["node", str(LOADGEN), json.dumps({**server.config, "mode": "hold", "clients": count, "connect_concurrency": 100})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    ready = json.loads(holder.stdout.readline())
    time.sleep(2)  # let allocations settle
    after = rss_kib(server.process.pid)
    holder.stdin.close()
    holder.wait(timeout=60)
    return {"connections": ready.get("ready"), "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_connection": (after - before) / max(1, count)}


def measure(server: Server, burst_deliveries: int, hold_count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"burst": {}, "latency": {}}
    # Memory first, on a fresh process: Python keeps freed memory, so after other runs the
    # process's RSS would no longer grow with new connections.
    result["memory"] = hold_and_measure_rss(server, hold_count)
    print(f"  {server.name} memory: {result['memory']['kib_per_connection']:.1f} KiB/connection", flush=True)
    for subscribers in SUBSCRIBER_COUNTS:
        messages = max(5, burst_deliveries // subscribers)
        result["burst"][subscribers] = loadgen(server.config, mode="burst", clients=subscribers, messages=messages, concurrency=4)
        print(f"  {server.name} burst {subscribers}: {result['burst'][subscribers]['deliveries_per_second']:.0f}/s", flush=True)
        result["latency"][subscribers] = loadgen(server.config, mode="latency", clients=subscribers, rate=LATENCY_RATE, duration_s=LATENCY_SECONDS)
        print(f"  {server.name} latency {subscribers}: p99 {result['latency'][subscribers]['p99_ms']:.1f} ms", flush=True)
    result["connect"] = loadgen({**server.config, "subscribe": False}, mode="connect", clients=CONNECT_COUNT, concurrency=100)
    print(f"  {server.name} connect: {result['connect']['connections_per_second']:.0f}/s", flush=True)
    return result


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(REDIS_URL=REDIS_URL, LOG_LEVEL="WARNING")
    return env


def bare() -> Server:
    port, publish_port = free_port(), free_port()
    config = {"ws_url": f"ws://127.0.0.1:{port}/", "channel": "room:1", "publish_url": f"http://127.0.0.1:{publish_port}/publish/room:1"}
    command = [PYTHON, "bench/baselines/bare/server.py", "--port", str(port), "--publish-port", str(publish_port)]
    return Server("bare", command, base_env(), port, config)


def naive() -> Server:
    port = free_port()
    config = {"ws_url": f"ws://127.0.0.1:{port}/ws", "channel": "room:1", "publish_url": f"http://127.0.0.1:{port}/publish/room:1"}
    command = [PYTHON, "-m", "daphne", "-p", str(port), "--access-log", os.devnull, "bench.baselines.naive.app:application"]
    return Server("naive", command, base_env(), port, config)


class Project:
    """A fresh database with a user, a key and a room; servers of the project on top of it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-project-"))
        self.env = base_env()
        self.env.update(
            DATABASE_URL=f"sqlite:///{self.folder / 'db.sqlite3'}", DEBUG="0", SECRET_KEY="bench-" + "x" * 40,
            RETROCHAT_REDIS_PREFIX=f"bench-{os.getpid()}", RETROCHAT_WRITE_THROTTLE="off",
            RETROCHAT_MAX_CONNECTIONS_PER_USER="1000000",
        )
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        out = subprocess.run([PYTHON, "manage.py", "createapikey", "bench", "--create-user"], cwd=ROOT, env=self.env,
                             check=True, capture_output=True, text=True)
        self.key = out.stdout.strip().splitlines()[-1]

    def server(self, name: str, server_kind: str, **env: str) -> Server:
        port = free_port()
        headers = {"Authorization": f"Bearer {self.key}"}
        config = {"ws_url": f"ws://127.0.0.1:{port}/v1/realtime", "ws_headers": headers, "greets": True, "channel": "room:1",
                  "publish_url": f"http://127.0.0.1:{port}/v1/rooms/1/messages", "publish_headers": headers}
        server_env = {**self.env, "PORT": str(port), "RETROCHAT_SERVER": server_kind, **env}
        return Server(name, [PYTHON, "-m", "retrochat.serve"], server_env, port, config)

    def create_room(self, port: int) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/rooms", data=json.dumps({"name": "bench"}).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def two_processes(project: Project) -> dict[str, Any]:
    """Burst deliveries with the subscribers spread over two processes behind the same Redis,
    publishing through the first; compare with `project` (one process) at the same size."""
    with project.server("project-a", "uvicorn") as a, project.server("project-b", "uvicorn") as b:
        messages = max(5, BURST_DELIVERIES // MAIN_SUBSCRIBERS)
        result = loadgen(a.config, mode="burst", clients=MAIN_SUBSCRIBERS, messages=messages, concurrency=4,
                         ws_urls=[a.config["ws_url"], b.config["ws_url"]])
    return result


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "python": platform.python_version(), "node": node, "kernel": platform.release(), "quick": QUICK}


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "settings": {"subscribers": SUBSCRIBER_COUNTS, "main_subscribers": MAIN_SUBSCRIBERS,
                                            "burst_deliveries": BURST_DELIVERIES, "latency_rate": LATENCY_RATE,
                                            "latency_seconds": LATENCY_SECONDS, "connect_count": CONNECT_COUNT,
                                            "hold_count": HOLD_COUNT, "naive_hold_count": NAIVE_HOLD_COUNT}}
    print("bare baseline", flush=True)
    with bare() as server:
        results["bare"] = measure(server, BURST_DELIVERIES, HOLD_COUNT)
    print("naive baseline", flush=True)
    with naive() as server:
        results["naive"] = measure(server, NAIVE_BURST_DELIVERIES, NAIVE_HOLD_COUNT)
    project = Project()
    try:
        for name, kind in (("project", "uvicorn"), ("project_daphne", "daphne")):
            print(f"{name} ({kind})", flush=True)
            with project.server(name, kind) as server:
                if name == "project":
                    project.create_room(server.port)
                results[name] = measure(server, BURST_DELIVERIES, HOLD_COUNT)
        print("project on the core Redis layer", flush=True)
        with project.server("project_core_layer", "uvicorn", RETROCHAT_CHANNEL_LAYER="core") as server:
            messages = max(5, BURST_DELIVERIES // MAIN_SUBSCRIBERS)
            results["project_core_layer"] = {
                "burst": loadgen(server.config, mode="burst", clients=MAIN_SUBSCRIBERS, messages=messages, concurrency=4),
                "latency": loadgen(server.config, mode="latency", clients=MAIN_SUBSCRIBERS, rate=LATENCY_RATE, duration_s=LATENCY_SECONDS),
            }
        print(f"  core layer: {results['project_core_layer']['burst']['deliveries_per_second']:.0f}/s", flush=True)
        print("project, two processes", flush=True)
        results["project_two_processes"] = two_processes(project)
        print(f"  two processes: {results['project_two_processes']['deliveries_per_second']:.0f}/s", flush=True)
    finally:
        project.close()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'latest.json'}", flush=True)


if __name__ == "__main__":
    main()
