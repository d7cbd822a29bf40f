"""`python -m retrochat.cluster` (`make cluster`): N server processes on consecutive ports sharing
one Redis and one database, for trying scale-out by hand. Ctrl-C (or SIGTERM) stops them all, each
closing its sockets first (1012 under uvicorn, 1001 under daphne).

Metrics use prometheus_client's multiprocess mode: the processes write their values to files in
PROMETHEUS_MULTIPROC_DIR (default: a folder named after the first port in the system's temporary
directory), which is emptied at start, and /metrics on any port answers for all of them. A process
that exits is marked dead, so that its gauges (open connections…) leave the sums; its counters
stay, as counters must not go down.

Environment: REDIS_URL (default redis://127.0.0.1:6379/0, the local Redis), DATABASE_URL (default:
the SQLite file), HOST, PORT (the first port, default 8001), RETROCHAT_PROCESSES (default 2),
PROMETHEUS_MULTIPROC_DIR.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from retrochat.env import env_int

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


STOP_TIMEOUT_SECONDS = 15  # after SIGTERM, before a server that has not stopped is killed


def prepare_metrics_dir(first_port: int) -> Path:
    """The multiprocess metrics directory, created if missing and emptied of a previous run's files
    (the library requires a clean directory at start: old files would add to the counts)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(tempfile.gettempdir()) / f"retrochat-metrics-{first_port}")
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


def main() -> int:
    # Processes meet in Redis: without it, each would be an island.
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    first_port = env_int("PORT", 8001)
    count = env_int("RETROCHAT_PROCESSES", 2)
    metrics_dir = prepare_metrics_dir(first_port)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    processes = {}
    for index in range(count):
        env = {**os.environ, "PORT": str(first_port + index)}
        process = subprocess.Popen([sys.executable, "-m", "retrochat.serve"], env=env)
        processes[process.pid] = process
    host = os.environ.get("HOST", "127.0.0.1")
    urls = ", ".join(f"http://{host}:{first_port + i}" for i in range(count))
    print(f"RetroChat cluster: {count} processes on {urls}, sharing {os.environ['REDIS_URL']}", flush=True)

    def signal_all(sig: int) -> None:
        # os.kill, not Popen.poll()/send_signal(): those reap a child that has just exited, and the
        # loop below would then never see it to mark it dead (its gauges stayed in the sums).
        for pid in list(running):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:  # exited, not reaped yet: the loop below takes it
                pass

    def kill_stragglers() -> None:
        if running:
            print(f"RetroChat cluster: {sorted(running)} did not stop within {STOP_TIMEOUT_SECONDS} s; killing", flush=True)
            signal_all(signal.SIGKILL)

    def stop(signum: int, frame: object) -> None:
        signal_all(signal.SIGTERM)
        # Each server stops within its graceful timeout (5 s); one that does not is killed, so that
        # the cluster still exits and marks it dead (a supervisor's SIGKILL would leave its gauges).
        timer = threading.Timer(STOP_TIMEOUT_SECONDS, kill_stragglers)
        timer.daemon = True
        timer.start()

    running: dict[int, subprocess.Popen[bytes]] = dict(processes)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    from prometheus_client import multiprocess

    codes = []
    while running:
        pid, status = os.waitpid(-1, 0)  # whichever exits first, so that it leaves the sums at once
        if pid not in running:
            continue
        process = running.pop(pid)
        process.returncode = os.waitstatus_to_exitcode(status)
        codes.append(process.returncode)
        multiprocess.mark_process_dead(pid, str(metrics_dir))
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
