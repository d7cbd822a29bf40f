"""Process lifecycle for orchestrators: whether this server process has begun a graceful shutdown.

The ASGI server's SIGTERM handling (retrochat/serve.py) calls `begin_shutdown()` first thing;
`GET /v1/health/ready` answers 503 from then on, so that a load balancer stops sending new
requests and sockets here before the process closes its WebSockets (1012/1001). With
RETROCHAT_SHUTDOWN_DRAIN_SECONDS > 0 the server keeps serving that long after SIGTERM before it
starts closing, which gives the balancer's next readiness probe time to see the 503.
"""
import threading

from retrochat.env import env_float

_shutting_down = threading.Event()  # set from a signal handler, read from request threads


def begin_shutdown() -> None:
    _shutting_down.set()


def shutting_down() -> bool:
    return _shutting_down.is_set()


def drain_seconds() -> float:
    """How long to keep serving between SIGTERM and closing (RETROCHAT_SHUTDOWN_DRAIN_SECONDS, default 0)."""
    return env_float("RETROCHAT_SHUTDOWN_DRAIN_SECONDS", 0.0)
