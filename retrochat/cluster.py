"""`python -m retrochat.cluster` (`make cluster`): N server processes on consecutive ports sharing
one Redis and one database, for trying scale-out by hand. Ctrl-C (or SIGTERM) stops them all, each
closing its sockets first (1012 under uvicorn, 1001 under daphne).

Environment: REDIS_URL (default redis://127.0.0.1:6379/0, the local Redis), DATABASE_URL (default:
the SQLite file), HOST, PORT (the first port, default 8001), RETROCHAT_PROCESSES (default 2).
"""
import os
import signal
import subprocess
import sys

from retrochat.env import env_int

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def main() -> int:
    # Processes meet in Redis: without it, each would be an island.
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    first_port = env_int("PORT", 8001)
    count = env_int("RETROCHAT_PROCESSES", 2)
    processes = []
    for index in range(count):
        env = {**os.environ, "PORT": str(first_port + index)}
        processes.append(subprocess.Popen([sys.executable, "-m", "retrochat.serve"], env=env))
    host = os.environ.get("HOST", "127.0.0.1")
    urls = ", ".join(f"http://{host}:{first_port + i}" for i in range(count))
    print(f"RetroChat cluster: {count} processes on {urls}, sharing {os.environ['REDIS_URL']}", flush=True)

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    codes = [process.wait() for process in processes]
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
