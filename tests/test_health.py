"""Liveness and readiness for orchestrators: /v1/health/live answers while the
process serves; /v1/health/ready also needs the database and the channel layer, and turns 503 as
soon as a graceful shutdown begins, before the process closes its WebSockets."""
import asyncio
import os
import signal
import threading
import time

import pytest
from websockets.protocol import State

from retrochat import lifecycle
from tests import factories
from tests.live import LiveServer, recv_close, recv_json
from tests.support import TEXT

pytestmark = pytest.mark.slow

CHECKS_OK = {"database": "ok", "channel_layer": "ok", "shutdown": "not_started"}


def test_liveness_answers_ok(anon, db):
    response = anon.get("/v1/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readiness_answers_ok_with_its_checks(anon, db):
    response = anon.get("/v1/health/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "checks": CHECKS_OK})


def test_readiness_answers_503_once_a_shutdown_has_begun(anon, db, monkeypatch):
    monkeypatch.setattr(lifecycle, "_shutting_down", threading.Event())  # this process's flag, restored after
    lifecycle.begin_shutdown()
    response = anon.get("/v1/health/ready")
    assert response.status_code == 503
    assert response.json() == {
        "code": "SERVICE_UNAVAILABLE",
        "message": TEXT,
        "details": {"checks": {**CHECKS_OK, "shutdown": "in_progress"}},
    }
    assert anon.get("/v1/health/live").status_code == 200
    assert anon.get("/v1/health").status_code == 200  # unchanged: dependencies only


def test_the_drain_delay_defaults_to_zero(monkeypatch):
    monkeypatch.delenv("RETROCHAT_SHUTDOWN_DRAIN_SECONDS", raising=False)
    assert lifecycle.drain_seconds() == 0.0
    monkeypatch.setenv("RETROCHAT_SHUTDOWN_DRAIN_SECONDS", "2.5")
    assert lifecycle.drain_seconds() == 2.5


def _get(server: LiveServer, path: str) -> tuple[int, object]:
    return server.request("GET", path)


@pytest.fixture
def key(transactional_db):
    return factories.make_key(factories.make_user("ada"))


@pytest.mark.timeout(90)
async def test_sigterm_turns_readiness_503_before_the_sockets_close(key):
    # A drain delay long enough that the 503 is seen while the socket is still open.
    with LiveServer(RETROCHAT_SHUTDOWN_DRAIN_SECONDS="5") as server:
        assert await asyncio.to_thread(_get, server, "/v1/health/ready") == (200, {"status": "ok", "checks": CHECKS_OK})
        async with server.connect(key) as ws:
            assert (await recv_json(ws))["type"] == "connected"
            os.kill(server.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while True:
                status, body = await asyncio.to_thread(_get, server, "/v1/health/ready")
                if status == 503:
                    break
                assert status == 200, body
                assert time.monotonic() < deadline, "readiness never turned 503 after SIGTERM"
                await asyncio.sleep(0.05)
            assert body == {
                "code": "SERVICE_UNAVAILABLE",
                "message": TEXT,
                "details": {"checks": {**CHECKS_OK, "shutdown": "in_progress"}},
            }
            assert ws.state is State.OPEN  # the balancer was told first; the socket is still served
            assert await asyncio.to_thread(_get, server, "/v1/health/live") == (200, {"status": "ok"})
            expected = 1001 if os.environ.get("RETROCHAT_SERVER") == "daphne" else 1012
            assert await recv_close(ws, timeout=20) == expected
        assert await asyncio.to_thread(server.process.wait, 20) is not None
