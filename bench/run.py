"""`make bench`: the project, its baselines and its peers, on this machine, in one run, with one load
generator.

Servers (each started fresh, one process unless said otherwise, Redis channel layer):
- project: `python -m retrochat.serve` (uvicorn, the default; daphne; and granian, measured only),
  events published by `POST /v1/rooms/{id}/messages` (authentication, a database write, the event
  log, publish on commit);
- naive: the Channels tutorial design (bench/baselines/naive/app.py) under daphne;
- bare: a `websockets` server broadcasting pre-encoded text (bench/baselines/bare/server.py);
- peers: python-socketio (bench/baselines/pysocketio/, uvicorn + uvloop, AsyncRedisManager) and Node
  socket.io with @socket.io/redis-adapter (bench/baselines/nodesocketio/), driven by socket.io-client.

The load generator (bench/loadgen/loadgen.js, Node) measures, per server: deliveries per second in a
burst and the server's CPU time per delivery (utime + stime of the server's process tree from
/proc, read just before the first publish and just after the last delivery), latency p50/p99 at a
fixed publish rate, new connections per second, and server RSS per open subscribed connection.
For the project only, with the event log (RETROCHAT_EVENT_LOG) on and off: REST creates per second
with 8 concurrent keep-alive writers to one room and to 8 rooms, on SQLite and on PostgreSQL; and a
reconnect storm: every subscriber's TCP connection reset at once while events flow, each client
reconnecting with `since` (time to recover everyone; missing and duplicate events, which must be 0).

Results go to bench/results/latest.json, and bench/report.py turns them into docs/benchmarks.md and
docs/benchmarks.png. Every process started here (servers, load generators) is stopped at exit, on
failure and on SIGINT/SIGTERM too.

Environment: REDIS_URL (default redis://127.0.0.1:6379/12); BENCH_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432/retrochat_bench; the database is dropped and created afresh;
`none` skips PostgreSQL); BENCH_QUICK=1 for a smoke run (small counts: its figures mean nothing);
BENCH_ONLY=name,name to run a subset (bare, naive, pysocketio, nodesocketio, project,
project_daphne, project_granian, project_core_layer, project_two_processes, creates, storm) and
BENCH_RESULTS=path to write elsewhere than bench/results/latest.json.
"""
import atexit
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "bench" / "loadgen" / "loadgen.js"
RESULTS = ROOT / "bench" / "results"
RESULTS_FILE = Path(os.environ.get("BENCH_RESULTS", RESULTS / "latest.json"))
PYTHON = sys.executable
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/retrochat_bench")
QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
NODE_FOLDERS = [ROOT / "bench" / "loadgen", ROOT / "bench" / "baselines" / "nodesocketio"]

SUBSCRIBER_COUNTS = [100, 1000] if QUICK else [100, 1000, 5000]
MAIN_SUBSCRIBERS = 1000
BURST_DELIVERIES = 20_000 if QUICK else 100_000
NAIVE_BURST_DELIVERIES = 10_000 if QUICK else 30_000
LATENCY_RATE = 10  # messages per second: 10,000 deliveries/s at 1,000 subscribers
LATENCY_SECONDS = 3 if QUICK else 10
CONNECT_COUNT = 500 if QUICK else 2000
HOLD_COUNT = 1000 if QUICK else 10_000
NAIVE_HOLD_COUNT = 500 if QUICK else 2000  # the naive design subscribes in Redis per connection: slow to open
CREATE_WRITERS = 8
CREATE_ROOMS = 8
CREATE_SECONDS = 3 if QUICK else 10
STORM_CLIENTS = 200 if QUICK else 1000
STORM_RATE = 10 if QUICK else 20  # messages per second published through REST during the storm
LOADGEN_TIMEOUT = 600

# Every process this script starts, so that all of them are stopped whatever happens.
_started: list[subprocess.Popen] = []


def start(command: list[str], **kwargs: Any) -> subprocess.Popen:
    """Popen in its own process group (so that its children go with it), remembered for clean-up."""
    process = subprocess.Popen(command, start_new_session=True, **kwargs)
    _started.append(process)
    return process


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    else:  # the leader is gone: its group may not be
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if process in _started:
        _started.remove(process)


def stop_everything() -> None:
    for process in list(reversed(_started)):
        try:
            stop(process, timeout=5)
        except Exception as exc:  # keep stopping the others
            print(f"clean-up: could not stop {process.pid}: {exc}", file=sys.stderr)


def _on_signal(signum: int, _frame: object) -> None:
    stop_everything()
    sys.exit(128 + signum)


atexit.register(stop_everything)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


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


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants, and of its children that already ended
    (cutime + cstime), in seconds (/proc/PID/stat)."""
    total = 0
    for number, proc in enumerate([pid, *descendants(pid)]):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
        total += int(fields[11]) + int(fields[12])
        if number == 0:
            total += int(fields[13]) + int(fields[14])
    return total / CLOCK_TICKS


def wait_for_port(port: int, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening on {port}")
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
        self.process = start(self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, process=self.process)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        stop(self.process)
        self.log.close()
        if exc and exc[0] is not None:
            tail = Path(self.log.name).read_text(errors="replace")[-2000:]
            print(f"  {self.name} failed; the end of its log ({self.log.name}):\n{tail}", file=sys.stderr)
        else:
            os.unlink(self.log.name)


def loadgen(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    merged = {**config, **overrides}
    process = start(["node", str(LOADGEN), json.dumps(merged)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=LOADGEN_TIMEOUT)
    finally:
        stop(process)
    return _result(out)


def _result(out: str) -> dict[str, Any]:
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError("loadgen printed nothing")
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"loadgen: {result['error']}")
    return result


def burst_with_cpu(server: "Server", others: tuple["Server", ...] = (), **overrides: Any) -> dict[str, Any]:
    """A burst (loadgen `sync` mode), with the server's CPU time read right before the first publish
    and right after the last delivery: server CPU µs per delivery. With `others` (more processes of
    the same server), their CPU counts too, and each process's share, the load generator's own CPU
    and the wall time are reported: whether the machine's cores were the limit."""
    assert server.process is not None and all(other.process is not None for other in others)
    pids = [server.process.pid, *(other.process.pid for other in others)]  # type: ignore[union-attr]
    merged = {**server.config, "mode": "burst", "sync": True, **overrides}
    process = start(["node", str(LOADGEN), json.dumps(merged)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    deadline = time.monotonic() + LOADGEN_TIMEOUT
    timer = _kill_after(process, LOADGEN_TIMEOUT)
    try:
        readings = []
        for _ in ("ready", "measured"):
            line = process.stdout.readline()
            phase = json.loads(line) if line.strip() else {"error": "loadgen ended early"}
            if "error" in phase:
                raise RuntimeError(f"loadgen: {phase['error']}")
            readings.append(([cpu_seconds(pid) for pid in pids], cpu_seconds(process.pid), time.monotonic()))
            process.stdin.write("go\n")
            process.stdin.flush()
        out = process.stdout.read()
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        timer.cancel()
        stop(process)
    result = _result(out)
    (servers_before, loadgen_before, started), (servers_after, loadgen_after, ended) = readings
    result["servers_cpu_s"] = [after - before for before, after in zip(servers_before, servers_after)]
    result["server_cpu_s"] = sum(result["servers_cpu_s"])
    result["loadgen_cpu_s"], result["wall_s"] = loadgen_after - loadgen_before, ended - started
    result["cpu_us_per_delivery"] = 1e6 * result["server_cpu_s"] / result["received"] if result["received"] else None
    return result


def _kill_after(process: subprocess.Popen, seconds: float) -> "threading.Timer":
    timer = threading.Timer(seconds, lambda: process.poll() is None and os.killpg(process.pid, signal.SIGKILL))
    timer.daemon = True
    timer.start()
    return timer


def hold_and_measure_rss(server: Server, count: int) -> dict[str, Any]:
    """Server RSS growth per open subscribed connection (baseline taken after one warm-up socket)."""
    assert server.process is not None
    loadgen(server.config, mode="connect", clients=1, concurrency=1)
    before = rss_kib(server.process.pid)
    holder = start(
        ["node", str(LOADGEN), json.dumps({**server.config, "mode": "hold", "clients": count, "connect_concurrency": 100})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    timer = _kill_after(holder, LOADGEN_TIMEOUT)
    try:
        ready = json.loads(holder.stdout.readline() or '{"error": "loadgen ended early"}')
        if "error" in ready:
            raise RuntimeError(f"loadgen: {ready['error']}")
        time.sleep(2)  # let allocations settle
        after = rss_kib(server.process.pid)
        holder.stdin.close()
        holder.wait(timeout=60)
    finally:
        timer.cancel()
        stop(holder)
    return {"connections": ready.get("ready"), "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_connection": (after - before) / max(1, count)}


def wait_until_idle(server: Server, timeout_s: float = 15.0) -> None:
    """Before a measurement: wait until the server has finished the previous one (the sockets a load
    generator dropped as it exited are still being closed for a while at 5,000 subscribers), i.e.
    until it uses under 5 % of a core over 0.2 s, or `timeout_s` has passed. The same for every server."""
    assert server.process is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds(server.process.pid)
        time.sleep(0.2)
        if cpu_seconds(server.process.pid) - before < 0.01:
            return


def measure(server: Server, burst_deliveries: int, hold_count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"burst": {}, "latency": {}}
    # Memory first, on a fresh process: Python keeps freed memory, so after other runs the
    # process's RSS would no longer grow with new connections.
    result["memory"] = hold_and_measure_rss(server, hold_count)
    print(f"  {server.name} memory: {result['memory']['kib_per_connection']:.1f} KiB/connection", flush=True)
    for subscribers in SUBSCRIBER_COUNTS:
        messages = max(5, burst_deliveries // subscribers)
        wait_until_idle(server)
        burst = result["burst"][subscribers] = burst_with_cpu(server, clients=subscribers, messages=messages, concurrency=4)
        cpu = burst["cpu_us_per_delivery"]
        print(f"  {server.name} burst {subscribers}: {burst['deliveries_per_second']:.0f}/s, "
              f"{'—' if cpu is None else f'{cpu:.1f}'} µs CPU/delivery, {burst['lost']} lost", flush=True)
        wait_until_idle(server)
        result["latency"][subscribers] = loadgen(server.config, mode="latency", clients=subscribers, rate=LATENCY_RATE, duration_s=LATENCY_SECONDS)
        print(f"  {server.name} latency {subscribers}: p99 {result['latency'][subscribers]['p99_ms']:.1f} ms", flush=True)
    wait_until_idle(server)
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


def pysocketio() -> Server:
    """python-socketio as its docs run it: uvicorn with uvloop (and the HTTP and WebSocket
    implementations RetroChat's default uses), one process, AsyncRedisManager."""
    port = free_port()
    config = {"client": "socketio", "ws_url": f"http://127.0.0.1:{port}", "channel": "room:1",
              "publish_url": f"http://127.0.0.1:{port}/publish/room:1"}
    command = [PYTHON, "-m", "uvicorn", "bench.baselines.pysocketio.app:app", "--host", "127.0.0.1", "--port", str(port),
               "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio", "--no-access-log",
               "--log-level", "warning"]
    return Server("pysocketio", command, base_env(), port, config)


def nodesocketio() -> Server:
    port = free_port()
    config = {"client": "socketio", "ws_url": f"http://127.0.0.1:{port}", "channel": "room:1",
              "publish_url": f"http://127.0.0.1:{port}/publish/room:1"}
    command = ["node", "bench/baselines/nodesocketio/server.js", "--port", str(port)]
    return Server("nodesocketio", command, base_env(), port, config)


def reset_postgres(url: str) -> None:
    """Drop and create the bench database (it holds nothing but benchmark rows)."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    if not name.replace("_", "").isalnum() or "bench" not in name:
        raise RuntimeError(f"refusing to drop {name!r}: the bench database's name must contain 'bench'")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Project:
    """A fresh database with a user, a key and a room; servers of the project on top of it."""

    def __init__(self, database_url: str | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-project-"))
        self.env = base_env()
        self.env.update(
            DATABASE_URL=database_url or f"sqlite:///{self.folder / 'db.sqlite3'}", DEBUG="0", SECRET_KEY="bench-" + "x" * 40,
            RETROCHAT_REDIS_PREFIX=f"bench-{os.getpid()}", RETROCHAT_WRITE_THROTTLE="off",
            RETROCHAT_MAX_CONNECTIONS_PER_USER="1000000",
        )
        if database_url and database_url.startswith("postgres"):
            reset_postgres(database_url)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True, timeout=300)
        out = subprocess.run([PYTHON, "manage.py", "createapikey", "bench", "--create-user"], cwd=ROOT, env=self.env,
                             check=True, capture_output=True, text=True, timeout=120)
        self.key = out.stdout.strip().splitlines()[-1]
        self.rooms: list[str] = []

    def server(self, name: str, server_kind: str, **env: str) -> Server:
        port = free_port()
        headers = {"Authorization": f"Bearer {self.key}"}
        config = {"ws_url": f"ws://127.0.0.1:{port}/v1/realtime", "ws_headers": headers, "greets": True, "channel": "room:1",
                  "publish_url": f"http://127.0.0.1:{port}/v1/rooms/1/messages", "publish_headers": headers}
        server_env = {**self.env, "PORT": str(port), "RETROCHAT_SERVER": server_kind, **env}
        return Server(name, [PYTHON, "-m", "retrochat.serve"], server_env, port, config)

    def ensure_rooms(self, port: int, count: int = 1) -> list[str]:
        """Rooms 1…count (the bench user is a member of each); their ids."""
        while len(self.rooms) < count:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/rooms", data=json.dumps({"name": f"bench {len(self.rooms) + 1}"}).encode(),
                method="POST", headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            )
            self.rooms.append(json.loads(urllib.request.urlopen(request, timeout=10).read())["id"])
        return self.rooms[:count]

    def create_room(self, port: int) -> None:
        self.ensure_rooms(port, 1)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        try:  # the run's own Redis keys (presence, metrics), by the run's own prefix
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
            keys = list(client.scan_iter(match=f"{self.env['RETROCHAT_REDIS_PREFIX']}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
            client.close()
        except Exception as exc:
            print(f"clean-up: Redis keys of {self.env['RETROCHAT_REDIS_PREFIX']} left: {exc}", file=sys.stderr)


def two_processes(project: Project) -> dict[str, Any]:
    """Burst deliveries with the subscribers spread over two processes behind the same Redis,
    publishing through the first; compare with `project` (one process) at the same size."""
    with project.server("project-a", "uvicorn") as a, project.server("project-b", "uvicorn") as b:
        project.create_room(a.port)
        messages = max(5, BURST_DELIVERIES // MAIN_SUBSCRIBERS)
        return burst_with_cpu(a, others=(b,), clients=MAIN_SUBSCRIBERS, messages=messages, concurrency=4,
                              ws_urls=[a.config["ws_url"], b.config["ws_url"]])


def creates(database: str) -> dict[str, Any]:
    """REST creates per second, event log on and off, 8 concurrent keep-alive writers to one room and
    to 8 rooms, on one database (`sqlite` or `postgres`); a fresh database and server per case."""
    result: dict[str, Any] = {}
    for log in ("on", "off"):
        project = Project(POSTGRES_URL if database == "postgres" else None)
        try:
            with project.server(f"creates-{database}-{log}", "uvicorn", RETROCHAT_EVENT_LOG="1" if log == "on" else "0") as server:
                rooms = project.ensure_rooms(server.port, CREATE_ROOMS)
                base = f"http://127.0.0.1:{server.port}/v1/rooms"
                for case, urls in (("one_room", [f"{base}/{rooms[0]}/messages"]),
                                   ("rooms", [f"{base}/{room}/messages" for room in rooms])):
                    r = result.setdefault(case, {})[log] = loadgen(
                        server.config, mode="creates", writers=CREATE_WRITERS, create_urls=urls, duration_s=CREATE_SECONDS)
                    print(f"  creates {database} log {log} {case}: {r['creates_per_second']:.0f}/s, p99 {r['p99_ms'] or 0:.0f} ms, "
                          f"errors {r['errors'] or 0}", flush=True)
        finally:
            project.close()
    return result


def storm(project: Project) -> dict[str, Any]:
    with project.server("project-storm", "uvicorn") as server:
        project.create_room(server.port)
        return loadgen(server.config, mode="storm", clients=STORM_CLIENTS, rate=STORM_RATE, pre_s=2, post_s=2,
                       timeout_s=60, connect_concurrency=100)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "python": platform.python_version(), "node": node, "kernel": platform.release(), "quick": QUICK}


def wanted(name: str) -> bool:
    return not ONLY or name in ONLY


def attempt(results: dict[str, Any], name: str, job: Any) -> None:
    """Run one measurement; a failure is recorded (and reported) instead of ending the run."""
    if not wanted(name):
        return
    print(name, flush=True)
    try:
        results[name] = job()
    except Exception as exc:
        print(f"  {name} FAILED: {exc}", file=sys.stderr, flush=True)
        results[name] = {"error": f"{exc.__class__.__name__}: {exc}"}


def measure_server(make: Any, burst_deliveries: int = BURST_DELIVERIES, hold_count: int = HOLD_COUNT) -> Any:
    def job() -> dict[str, Any]:
        with make() as server:
            return measure(server, burst_deliveries, hold_count)
    return job


def main() -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "settings": {"subscribers": SUBSCRIBER_COUNTS, "main_subscribers": MAIN_SUBSCRIBERS,
                                            "burst_deliveries": BURST_DELIVERIES, "latency_rate": LATENCY_RATE,
                                            "latency_seconds": LATENCY_SECONDS, "connect_count": CONNECT_COUNT,
                                            "hold_count": HOLD_COUNT, "naive_hold_count": NAIVE_HOLD_COUNT,
                                            "create_writers": CREATE_WRITERS, "create_rooms": CREATE_ROOMS,
                                            "create_seconds": CREATE_SECONDS, "storm_clients": STORM_CLIENTS,
                                            "storm_rate": STORM_RATE}}
    attempt(results, "bare", measure_server(bare))
    attempt(results, "naive", measure_server(naive, NAIVE_BURST_DELIVERIES, NAIVE_HOLD_COUNT))
    attempt(results, "pysocketio", measure_server(pysocketio))
    attempt(results, "nodesocketio", measure_server(nodesocketio))
    project_parts = ("project", "project_daphne", "project_granian", "project_core_layer", "project_two_processes", "storm")
    project = Project() if any(wanted(name) for name in project_parts) else None
    try:
        for name, kind in (("project", "uvicorn"), ("project_daphne", "daphne"), ("project_granian", "granian")):
            def job(name: str = name, kind: str = kind) -> dict[str, Any]:
                with project.server(name, kind) as server:
                    project.create_room(server.port)
                    return measure(server, BURST_DELIVERIES, HOLD_COUNT)
            attempt(results, name, job)

        def core_layer() -> dict[str, Any]:
            with project.server("project_core_layer", "uvicorn", RETROCHAT_CHANNEL_LAYER="core") as server:
                project.create_room(server.port)
                messages = max(5, BURST_DELIVERIES // MAIN_SUBSCRIBERS)
                return {
                    "burst": burst_with_cpu(server, clients=MAIN_SUBSCRIBERS, messages=messages, concurrency=4),
                    "latency": loadgen(server.config, mode="latency", clients=MAIN_SUBSCRIBERS, rate=LATENCY_RATE,
                                       duration_s=LATENCY_SECONDS),
                }
        attempt(results, "project_core_layer", core_layer)
        attempt(results, "project_two_processes", lambda: two_processes(project))
        attempt(results, "storm", lambda: storm(project))
        if "storm" in results and "error" not in results["storm"]:
            r = results["storm"]
            print(f"  storm: {r['clients']} clients recovered in {r['all_recovered_s']:.2f} s; "
                  f"missing {r['missing']}, duplicates {r['duplicates']}, not recovered {r['not_recovered']}", flush=True)
    finally:
        if project is not None:
            project.close()

    def all_creates() -> dict[str, Any]:
        out = {"sqlite": creates("sqlite")}
        if POSTGRES_URL.lower() == "none":
            out["postgres"] = {"error": "skipped (BENCH_POSTGRES_URL=none)"}
        else:
            try:
                out["postgres"] = creates("postgres")
            except Exception as exc:
                print(f"  creates on PostgreSQL FAILED: {exc}", file=sys.stderr, flush=True)
                out["postgres"] = {"error": f"{exc.__class__.__name__}: {exc}"}
        return out
    attempt(results, "creates", all_creates)

    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE}", flush=True)


if __name__ == "__main__":
    main()
