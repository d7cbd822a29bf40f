"""Real server processes for live tests: `python -m retrochat.serve` (uvicorn, or daphne with RETROCHAT_SERVER) on a free port.

The server shares the test database (a file for SQLite, the test database for PostgreSQL) and,
when REDIS_URL is set, Redis, and runs with the suite's settings (tests/settings.py: the project's,
with the suite's password hasher, so that the users a test makes sign in). Tests talk to it only as clients do: real HTTP and a real WebSocket
client (`websockets`). Every server is stopped, its whole process group, when its fixture ends.
"""
import asyncio
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import connection
from websockets.asyncio.client import ClientConnection, connect

from tests.asyncapi import check_client_frame, check_server_frame

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
RECV_TIMEOUT = 5.0
SILENCE_SECONDS = 0.3  # for proving that nothing arrives, where no sentinel can
_sentinel_rooms = itertools.count(1)


# Ports for the servers and proxies of tests: below the kernel's ephemeral range (32768 and up on
# Linux), so that no outgoing connection takes a server's port while it restarts (it keeps its
# port), and one block of them per pytest-xdist worker, so that workers never pick the same one.
TEST_PORTS = range(20000, 32000)
_port_cursor: "itertools.count[int] | None" = None


def _worker_ports() -> range:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = len(TEST_PORTS) // workers
    return range(TEST_PORTS.start + worker * size, TEST_PORTS.start + (worker + 1) * size)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive free ports of this worker's block. Each call moves on (from
    a random place, so that two runs of the suite at once rarely meet), so servers made one after
    the other, before any of them has started, get different ports."""
    global _port_cursor
    block = _worker_ports()
    if _port_cursor is None:
        _port_cursor = itertools.count(random.randrange(len(block)))
    for _ in range(len(block)):
        first = block.start + next(_port_cursor) % (len(block) - count + 1)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports in {block}")


def server_database_url() -> str:
    """The URL of the database pytest-django created, for the server process."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + settings["NAME"]))


class LiveServer:
    def __init__(self, *, ready_path: str = "/v1/health", **env: str) -> None:
        """`env`: settings for the server process. `ready_path`: what answers 200 once it serves
        (/v1/health/live for a server whose readiness is expected to fail, Redis being away)."""
        self.ready_path = ready_path
        self.port = free_port()
        self.env = {
            **os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "DATABASE_URL": server_database_url(),
            "DJANGO_SETTINGS_MODULE": "tests.settings", **env,
        }
        self.process: subprocess.Popen | None = None
        self.log_file = tempfile.NamedTemporaryFile(prefix="retrochat-server-", suffix=".log", delete=False)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def start(self) -> "LiveServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retrochat.serve"],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}{self.ready_path}", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {START_TIMEOUT}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> "LiveServer":
        """Stop (SIGTERM: sockets close with 1012 or 1001) and start again, same port, same database."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if os.environ.get("RETROCHAT_TEST_SHOW_SERVER_LOG"):
            print(self.log())
        self.log_file.close()
        Path(self.log_file.name).unlink(missing_ok=True)

    def log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP as a client does -----------------------------------------------------------------
    def request(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.http_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    async def arequest(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self.request, method, path, key, body)

    def connect(self, key: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        return connect(self.ws_url, additional_headers=headers, open_timeout=10, **kwargs)


async def recv_json(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    check_server_frame(frame)  # docs/asyncapi.yaml
    return frame


async def assert_silent(ws: ClientConnection, seconds: float = SILENCE_SECONDS) -> None:
    """Nothing arrives for `seconds`: only where no sentinel event can prove it (see tests/support.py)."""
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame}")


async def assert_next_is_sentinel_elsewhere(
    server: LiveServer, key: str, *sockets: ClientConnection, room: int | None = None
) -> None:
    """Prove that nothing arrived on `sockets` before now, without waiting: every socket subscribes
    to a public room (the `subscribed` reply must be next), the owner of `key` posts there and the
    message must be each socket's very next frame. A server's hub hands a socket what it publishes
    in order, so anything sent to the socket earlier would come first. The room is `room` (a public
    room `key` may post in) or else a new one of `key`'s owner (whose own feed gets a room:created:
    pass `room` when a socket follows that feed)."""
    created = None
    if room is None:
        status, created = await server.arequest("POST", "/v1/rooms", key, {"name": f"sentinel {next(_sentinel_rooms)}"})
        assert status == 201, created
        room = int(created["id"].removeprefix("room_"))
    channel = f"room:{room}"
    for ws in sockets:
        reply = await request_reply(ws, {"type": "subscribe", "channel": channel, "ref": "sentinel"})
        assert reply["type"] == "subscribed", f"expected the sentinel room's subscribed, got {reply}"
    status, message = await server.arequest("POST", f"/v1/rooms/{room}/messages", key, {"content": "sentinel"})
    assert status == 201, message
    for ws in sockets:
        frame = await recv_json(ws)
        assert (frame["type"], frame["data"].get("id")) == ("message:new", message["id"]), f"expected the sentinel, got {frame}"
        if created is not None:  # leave the socket's subscriptions as they were
            reply = await request_reply(ws, {"type": "unsubscribe", "channel": channel, "ref": "sentinel"})
            assert reply == {"type": "unsubscribed", "channel": channel, "ref": "sentinel"}, reply


async def send_json(ws: ClientConnection, frame: Any) -> None:
    check_client_frame(frame)  # docs/asyncapi.yaml; hostile tests send raw text with ws.send
    await ws.send(json.dumps(frame))


async def request_reply(ws: ClientConnection, frame: Any) -> dict[str, Any]:
    await send_json(ws, frame)
    return await recv_json(ws)


async def recv_close(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> int | None:
    """Wait for the server to close the connection; the close code it sent. Fails on any frame."""
    from websockets.exceptions import ConnectionClosed

    try:
        frame = await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"expected the connection to close, got a frame: {frame!r}")


class Browser:
    """A browser-like HTTP client with a cookie jar, for the Django admin (login, CSRF, forms)."""

    def __init__(self, server: LiveServer) -> None:
        import http.cookiejar

        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, final URL path, body) after redirects."""
        return self._open(urllib.request.Request(self.server.http_url + path))

    def post(self, path: str, fields: dict[str, Any] | list[tuple[str, Any]]) -> tuple[int, str, str]:
        """POST a form with this session's CSRF token, as the admin's own forms do."""
        from urllib.parse import urlencode

        if self.cookie("csrftoken") is None:
            self.get("/admin/login/")
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        items.append(("csrfmiddlewaretoken", self.cookie("csrftoken")))
        request = urllib.request.Request(
            self.server.http_url + path,
            data=urlencode([(k, "" if v is None else str(v)) for k, v in items]).encode(),
            headers={"Referer": self.server.http_url + path, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        return self._open(request)

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, urlsplit(response.geturl()).path, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, urlsplit(error.geturl()).path, error.read().decode(errors="replace")

    def login(self, username: str, password: str) -> "Browser":
        self.get("/admin/login/")
        status, final_path, body = self.post(
            "/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"}
        )
        assert (status, final_path) == (200, "/admin/"), f"admin login failed: {status} {final_path}\n{body[:2000]}"
        assert self.cookie("sessionid"), "no session cookie after logging in"
        return self


async def open_ready(stack: Any, server: LiveServer, key: str | None, **kwargs: Any) -> ClientConnection:
    """Open a connection inside an AsyncExitStack (closed with it) and read its `connected` frame."""
    ws = await stack.enter_async_context(server.connect(key, **kwargs))
    frame = await recv_json(ws)
    assert frame["type"] == "connected", frame
    return ws


async def subscribe(ws: ClientConnection, channel: str, event: str | None = None, ref: str = "s") -> dict[str, Any]:
    """Subscribe and return the reply; asserts nothing (callers compare the exact frame)."""
    frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": ref}
    if event is not None:
        frame["event"] = event
    return await request_reply(ws, frame)
