"""`python -m retrochat.serve`: daphne with this project's WebSocket settings from the environment.

- HOST, PORT (default 127.0.0.1:8000);
- RETROCHAT_HEARTBEAT_INTERVAL (25 s): daphne sends a WebSocket ping after that long without one;
  RETROCHAT_HEARTBEAT_TIMEOUT (20 s): a peer that has not answered by then is disconnected, so a
  silent peer is dropped within interval + timeout + 2 s (daphne checks every 2 s) = 47 s < 60 s;
- no maximum connection age (daphne's default closes every socket after a day);
- daphne's own message-size cap sits above RETROCHAT_MAX_FRAME_BYTES, so that an oversized frame
  reaches the application and is answered MESSAGE_TOO_LARGE (close 1009) instead of a bare close.
"""
import os
import sys

from retrochat.env import env_int


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
        "retrochat.asgi:application",
    ]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrochat.settings")
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run([*daphne_arguments(), *sys.argv[1:]])


if __name__ == "__main__":
    main()
