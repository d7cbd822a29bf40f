"""`python -m retrochat.serve`: daphne with this project's WebSocket settings from the environment.

- HOST, PORT (default 127.0.0.1:8000);
- RETROCHAT_HEARTBEAT_INTERVAL (25 s): daphne sends a WebSocket ping after that long without one;
  RETROCHAT_HEARTBEAT_TIMEOUT (20 s): a peer that has not answered by then is disconnected, so a
  silent peer is dropped within interval + timeout + 2 s (daphne checks every 2 s) = 47 s < 60 s;
- no maximum connection age (daphne's default closes every socket after a day);
- daphne's own message-size cap sits above RETROCHAT_MAX_FRAME_BYTES, so that an oversized frame
  reaches the application and is answered MESSAGE_TOO_LARGE (close 1009) instead of a bare close.
"""
import logging
import os
import sys

from retrochat.env import env_int

logger = logging.getLogger("retrochat.serve")

CLOSE_GOING_AWAY = 1001


def daphne_arguments() -> list[str]:
    max_frame = env_int("RETROCHAT_MAX_FRAME_BYTES", 65536)
    transport_cap = max(1024 * 1024, 4 * max_frame)
    return [
        "--bind", os.environ.get("HOST", "127.0.0.1"),
        "--port", os.environ.get("PORT", "8000"),
        "--ping-interval", str(env_int("RETROCHAT_HEARTBEAT_INTERVAL", 25)),
        "--ping-timeout", str(env_int("RETROCHAT_HEARTBEAT_TIMEOUT", 20)),
        "--websocket_timeout", "-1",
        "--websocket-max-message-size", str(transport_cap),
        "--websocket-max-frame-size", str(transport_cap),
        "--application-close-timeout", "5",
        # The application writes structured access logs itself (retrochat.access).
        "--access-log", os.devnull,
        "retrochat.asgi:application",
    ]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
    import asyncio

    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from twisted.internet import defer

    class GracefulServer(Server):
        """daphne that, on SIGTERM, closes every WebSocket with 1001 and cleans up presence first."""

        def kill_all_applications(self):  # type: ignore[no-untyped-def]
            from daphne.ws_protocol import WebSocketProtocol

            from realtime.shutdown import drain_connections

            for protocol in list(self.connections):
                if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                    # autobahn's sendClose() refuses 1001 for servers; the frame itself is valid.
                    protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, isReply=False)
            draining = defer.Deferred.fromFuture(asyncio.ensure_future(drain_connections()))
            draining.addErrback(lambda failure: logger.error("shutdown: %s", failure.getErrorMessage()))
            draining.addBoth(lambda _: self._cancel_applications())
            return draining

        def _cancel_applications(self):  # type: ignore[no-untyped-def]
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


if __name__ == "__main__":
    main()
