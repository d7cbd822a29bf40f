"""Profile RetroChat (uvicorn, one process, SQLite) under one load of bench/loadgen, with py-spy.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile.py burst|creates|connect [seconds [sqlite|postgres]]

Starts a fresh project server as bench/run.py does, runs `py-spy record --nonblocking` on it while
the load runs (burst: 1,000 subscribers, REST publishes 4 in flight; creates: 8 keep-alive writers
to one room; connect: new authenticated sockets), and prints the shares of samples by function
(inclusive) and by leaf, from py-spy's collapsed stacks (kept in bench/results/profile-<load>.txt,
which git ignores). Not part of `make bench`.
"""
import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
# PROFILE_GIL=1: sample only the thread holding the GIL (where Python time actually goes; without it,
# a thread waiting for the GIL is sampled where it stopped, which inflates tight loops).
GIL = ["--gil"] if os.environ.get("PROFILE_GIL") == "1" else []


def shares(path: Path, top: int = 40) -> None:
    inclusive: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        leaves[frames[-1]] += n
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("leaf", leaves)):
        print(f"--- {title}")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f} %  {frame}")


def main() -> None:
    load = sys.argv[1]
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    out = run.RESULTS / f"profile-{load}{'-' + sys.argv[3] if len(sys.argv) > 3 else ''}{'-gil' if GIL else ''}.txt"
    database = sys.argv[3] if len(sys.argv) > 3 else "sqlite"
    project = run.Project(run.POSTGRES_URL if database == "postgres" else None)
    try:
        with project.server("profile", "uvicorn") as server:
            rooms = project.ensure_rooms(server.port, 1)
            if load == "burst":
                job = dict(mode="burst", clients=1000, messages=seconds * 40, concurrency=4, timeout_s=seconds + 30)
            elif load == "creates":
                job = dict(mode="creates", writers=8, duration_s=seconds + 5,
                           create_urls=[f"http://127.0.0.1:{server.port}/v1/rooms/{rooms[0]}/messages"])
            elif load == "connect":
                job = dict(mode="connect", clients=20_000, concurrency=100, subscribe=False)
            else:
                sys.exit("load: burst, creates or connect")
            result: dict = {}
            worker = threading.Thread(target=lambda: result.update(run.loadgen(server.config, **job)), daemon=True)
            worker.start()
            delay = 8 if load == "burst" else 1  # burst: let the 1,000 sockets subscribe first
            worker.join(delay)
            subprocess.run([PY_SPY, "record", "--nonblocking", "--pid", str(server.process.pid), "--duration", str(seconds),
                            "--rate", "200", "--format", "raw", "--output", str(out), *GIL], check=True, timeout=seconds + 60)
            worker.join(run.LOADGEN_TIMEOUT)
            print({k: v for k, v in result.items() if not isinstance(v, (dict, list))})
    finally:
        project.close()
    shares(out)


if __name__ == "__main__":
    main()
