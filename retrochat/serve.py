"""`python -m retrochat.serve`: the ASGI server with this project's WebSocket settings.

RETROCHAT_SERVER picks the server: `uvicorn` (the default: uvloop, httptools and the sans-I/O
`websockets` protocol; about twice daphne's delivery rate here, docs/benchmarks.md) or `daphne`
(supported; the live tests run under both in CI). `granian` is measured by `make bench` only and is
not supported: it has no WebSocket heartbeat or frame-size setting, and realtime/transport.py cannot
reach its sockets, so slow consumers cannot be aborted and protocol close codes are not fixed
(bench/notes.md, rendered into docs/benchmarks.md); bench/requirements.txt pins it, requirements.txt
does not.

- HOST, PORT (default 127.0.0.1:8000);
- the settings' heartbeat (`heartbeat()`): the server pings every socket every
  RETROCHAT_HEARTBEAT_INTERVAL seconds and disconnects a peer that has not answered within
  RETROCHAT_HEARTBEAT_TIMEOUT, so a silent peer is dropped within interval + timeout (+ 2 s of
  daphne's timer): under a minute with the defaults (retrochat/settings.py);
- no maximum connection age (daphne's default closes every socket after a day);
- the transport's message-size cap sits above RETROCHAT_MAX_FRAME_BYTES, so that an oversized frame
  reaches the application and is answered MESSAGE_TOO_LARGE (close 1009) instead of a bare close;
- SIGTERM closes every WebSocket (uvicorn: 1012, daphne: 1001) and cleans up presence at once;
  from the signal on, `GET /v1/health/ready` answers 503 (retrochat/lifecycle.py), and with
  RETROCHAT_SHUTDOWN_DRAIN_SECONDS > 0 the server keeps serving that long before it starts closing,
  so that a load balancer sees the 503 and stops sending clients here first.
"""
import asyncio
import logging
import os
import sys
import threading
from typing import Any

from retrochat import lifecycle
from retrochat.env import env_int, env_str

logger = logging.getLogger("retrochat.serve")

APPLICATION = "retrochat.asgi:application"


def _settings() -> Any:
    """The settings the server runs with (DJANGO_SETTINGS_MODULE, the project's by default), read
    before Django starts: the one source of the heartbeat and the frame limit."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
    from django.conf import settings

    return settings


def heartbeat() -> tuple[int, int]:
    """(RETROCHAT_HEARTBEAT_INTERVAL, RETROCHAT_HEARTBEAT_TIMEOUT) in seconds, for either server."""
    return _settings().RETROCHAT_HEARTBEAT_INTERVAL, _settings().RETROCHAT_HEARTBEAT_TIMEOUT


def transport_cap() -> int:
    return max(1024 * 1024, 4 * _settings().RETROCHAT_MAX_FRAME_BYTES)


def daphne_arguments() -> list[str]:
    ping_interval, ping_timeout = heartbeat()
    return [
        "--bind", os.environ.get("HOST", "127.0.0.1"),
        "--port", os.environ.get("PORT", "8000"),
        "--ping-interval", str(ping_interval),
        "--ping-timeout", str(ping_timeout),
        "--websocket_timeout", "-1",
        "--websocket-max-message-size", str(transport_cap()),
        "--websocket-max-frame-size", str(transport_cap()),
        "--application-close-timeout", "5",
        # The application writes structured access logs itself (retrochat.access).
        "--access-log", os.devnull,
        APPLICATION,
    ]


def run_daphne() -> None:
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from twisted.internet import defer

    class GracefulServer(Server):
        """daphne that, on SIGTERM, closes every WebSocket with 1001 and cleans up presence first."""

        def kill_all_applications(self) -> "defer.Deferred[None]":
            # Twisted runs this "before shutdown" trigger on SIGTERM; the reactor keeps serving
            # until the Deferred it returns fires, so readiness answers 503 during the drain.
            lifecycle.begin_shutdown()
            drain = lifecycle.drain_seconds()
            if drain > 0:
                from twisted.internet import reactor, task

                logger.info("shutdown: not ready; closing connections in %.1f s", drain)
                return task.deferLater(reactor, drain, self._close_connections)
            return self._close_connections()

        def _close_connections(self):  # type: ignore[no-untyped-def]
            from daphne.ws_protocol import WebSocketProtocol

            from realtime.protocol import CLOSE_GOING_AWAY
            from realtime.shutdown import drain_connections

            for protocol in list(self.connections):
                if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                    # autobahn's sendClose() refuses 1001 for servers; the frame itself is valid.
                    protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, isReply=False)
            draining = defer.Deferred.fromFuture(asyncio.ensure_future(drain_connections()))
            draining.addErrback(lambda failure: logger.error("shutdown: %s", failure.getErrorMessage()))
            draining.addBoth(lambda _: self._cancel_applications())
            return draining

        def _cancel_applications(self) -> "defer.Deferred[list[Any]]":
            # daphne's own version, tolerating connections that never started an application.
            instances = [d.get("application_instance") for d in self.connections.values()]
            pending = [task for task in instances if task is not None and not task.done()]
            for task in pending:
                task.cancel()
            logger.info("Cancelled %d remaining application instance(s)", len(pending))
            waiting = defer.Deferred.fromFuture(asyncio.gather(*pending, return_exceptions=True))
            waiting.addErrback(lambda _: None)
            return waiting

    cli = CommandLineInterface()
    cli.server_class = GracefulServer
    cli.run([*daphne_arguments(), *sys.argv[1:]])


def run_uvicorn() -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    class DrainingServer(uvicorn.Server):
        """uvicorn that marks the process not ready on SIGTERM (or SIGINT), and with a drain delay
        goes on serving that long before its own shutdown starts; a second signal ends the wait."""

        def handle_exit(self, sig: int, frame: object) -> None:
            first = not lifecycle.shutting_down()
            lifecycle.begin_shutdown()
            drain = lifecycle.drain_seconds()
            if first and drain > 0:
                logger.info("shutdown: not ready; closing connections in %.1f s", drain)
                # A signal handler must not block: uvicorn's loop reads should_exit every 0.1 s.
                timer = threading.Timer(drain, super().handle_exit, (sig, frame))
                timer.daemon = True
                timer.start()
                return
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    # On SIGTERM uvicorn sends every socket close 1012 and delivers websocket.disconnect, so each
    # consumer cleans up its presence; it waits up to 5 s for them before cancelling.
    ping_interval, ping_timeout = heartbeat()
    config = uvicorn.Config(
        APPLICATION,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=env_int("PORT", 8000),
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        ws_max_size=transport_cap(),
        # No permessage-deflate: browsers offer it, and it would compress every frame once per
        # recipient (the hub writes one pre-encoded text to many sockets) and keep a zlib context
        # per connection. daphne (autobahn) does not accept it either.
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,  # retrochat.access writes structured access logs
        log_config=None,  # Django's LOGGING applies
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config)
    try:  # what uvicorn.run does for one worker without reload
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run_granian() -> None:
    """Measurement only (make bench): see the module docstring for what it lacks."""
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
    except ImportError:
        sys.exit("granian is not installed: pip install -r bench/requirements.txt")

    Granian(
        APPLICATION,
        address=os.environ.get("HOST", "127.0.0.1"),
        port=env_int("PORT", 8000),
        interface=Interfaces.ASGINL,  # no lifespan: Channels' router has no lifespan application
        loop=Loops.uvloop,
        websockets=True,
        log_access=False,
    ).serve()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
    server = env_str("RETROCHAT_SERVER", "uvicorn")
    if server == "uvicorn":
        run_uvicorn()
    elif server == "daphne":
        run_daphne()
    elif server == "granian":
        run_granian()
    else:
        sys.exit(f"RETROCHAT_SERVER must be uvicorn or daphne (or granian, measurement only), not {server!r}")


if __name__ == "__main__":
    main()
