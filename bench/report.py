"""Turn bench/results/latest.json into docs/benchmarks.md and docs/benchmarks.png (`make bench`)."""
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# BENCH_RESULTS / BENCH_DOC (the chart goes beside the document): the Makefile points a quick run
# (BENCH_QUICK=1) at bench/results/quick.*, so that a smoke run never overwrites the real report.
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results" / "latest.json")).resolve()
DOC = Path(os.environ.get("BENCH_DOC", ROOT / "docs" / "benchmarks.md")).resolve()
CHART = DOC.with_suffix(".png")
NOTES = ROOT / "bench" / "notes.md"

SERVERS = [
    ("project", "RetroChat (uvicorn, default)"),
    ("project_daphne", "RetroChat (daphne)"),
    ("project_granian", "RetroChat (granian, measured only)"),
    ("pysocketio", "peer: python-socketio (uvicorn, Redis manager)"),
    ("nodesocketio", "peer: Node socket.io + Redis adapter"),
    ("naive", "naive: Channels tutorial design"),
    ("bare", "bare: `websockets` broadcast"),
]


def ok(r: Any) -> bool:
    return bool(r) and "error" not in r


def measured(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(key, label, results[key]) for key, label in SERVERS if ok(results.get(key))]


def failures(results: dict[str, Any]) -> list[str]:
    """One line per measurement that failed in this run (the run goes on without it)."""
    names = [key for key, _ in SERVERS] + ["project_core_layer", "project_two_processes", "storm", "creates"]
    lines = [f"- `{name}` failed in this run: {results[name]['error']}" for name in names
             if isinstance(results.get(name), dict) and "error" in results[name]]
    return lines + [""] if lines else []


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def table(results: dict[str, Any]) -> list[str]:
    n = str(results["settings"]["main_subscribers"])
    rows = [
        f"| server | burst deliveries/s ({n} subs) | server CPU µs per delivery | losses | p50 ms | p99 ms (10 msg/s) "
        "| new connections/s | KiB per connection |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, label, r in measured(results):
        burst, latency = r["burst"][n], r["latency"][n]
        rows.append(
            f"| {label} | {fmt(burst['deliveries_per_second'])} | {fmt(burst.get('cpu_us_per_delivery'), 1)} "
            f"| {burst['lost'] + latency['lost']} | {fmt(latency['p50_ms'], 1)} "
            f"| {fmt(latency['p99_ms'], 1)} | {fmt(r['connect']['connections_per_second'])} | {fmt(r['memory']['kib_per_connection'], 1)} "
            f"({r['memory']['connections']:,} held) |"
        )
    return rows


def targets(results: dict[str, Any]) -> list[str]:
    if not all(ok(results.get(k)) for k in ("project", "bare", "naive", "project_two_processes")):
        return ["Not all of project, bare, naive and two processes were measured in this run."]
    n = str(results["settings"]["main_subscribers"])
    project, bare, naive = results["project"], results["bare"], results["naive"]
    burst = project["burst"][n]["deliveries_per_second"]
    lost = project["burst"][n]["lost"] + project["latency"][n]["lost"]
    p99 = project["latency"][n]["p99_ms"]
    kib = project["memory"]["kib_per_connection"]
    held = project["memory"]["connections"]
    connects = project["connect"]["connections_per_second"]
    two = results["project_two_processes"]["deliveries_per_second"]
    bare_burst = bare["burst"][n]["deliveries_per_second"]
    naive_burst = naive["burst"][n]["deliveries_per_second"]
    node = results.get("nodesocketio")
    node_burst = node["burst"][n]["deliveries_per_second"] if ok(node) else None
    cpu = project["burst"][n].get("cpu_us_per_delivery")
    bare_cpu = bare["burst"][n].get("cpu_us_per_delivery")
    rows = [
        "| target | measured | |",
        "| --- | --- | --- |",
    ]
    if node_burst is not None:
        rows.append(f"| burst ≥ Node socket.io | {fmt(burst)} vs {fmt(node_burst)} ({burst / node_burst:.2f} ×) | {verdict(burst >= node_burst)} |")
    rows += [
        f"| burst ≥ 0.8 × bare | {burst / bare_burst:.2f} × bare ({fmt(burst)} vs {fmt(bare_burst)}) | {verdict(burst >= 0.8 * bare_burst)} |",
        f"| zero losses | {lost} lost | {verdict(lost == 0)} |",
    ]
    if cpu is not None and bare_cpu:
        rows.append(f"| server CPU per delivery ≤ 1.5 × bare | {fmt(cpu, 1)} vs {fmt(bare_cpu, 1)} µs ({cpu / bare_cpu:.1f} ×) | {verdict(cpu <= 1.5 * bare_cpu)} |")
    rows += [
        f"| p99 ≤ 50 ms at 10 msg/s × {n} subscribers | {fmt(p99, 1)} ms | {verdict(p99 is not None and p99 <= 50)} |",
        f"| ≥ 1,000 new authenticated connections/s | {fmt(connects)}/s | {verdict(connects >= 1000)} |",
        f"| 10,000 connections at ≤ 20 KiB each | {held:,} held, {fmt(kib, 1)} KiB each | {verdict(held >= 10_000 and kib <= 20)} |",
        f"| two processes ≥ 1.8 × one | {two / burst:.2f} × ({fmt(two)} vs {fmt(burst)}) | {verdict(two >= 1.8 * burst)} |",
        f"| (round 1) burst ≥ 8 × the Channels tutorial design | {burst / naive_burst:.1f} × naive | {verdict(burst >= 8 * naive_burst)} |",
    ]
    return rows


def chart(results: dict[str, Any]) -> None:
    counts = results["settings"]["subscribers"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for _, label, r in measured(results):
        left.plot(counts, [r["burst"][str(c)]["deliveries_per_second"] for c in counts], marker="o", label=label)
        right.plot(counts, [r["latency"][str(c)]["p99_ms"] for c in counts], marker="o", label=label)
    left.set(title="Burst deliveries per second", xlabel="subscribers on one channel", ylabel="deliveries/s", xscale="log")
    right.set(title="p99 latency at 10 messages/s", xlabel="subscribers on one channel", ylabel="ms", xscale="log", yscale="log")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.set_xticks(counts, [str(c) for c in counts])
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)


def detail(results: dict[str, Any]) -> list[str]:
    rows = ["| server | subscribers | burst deliveries/s | CPU µs per delivery | p50 ms | p99 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for _, label, r in measured(results):
        for count in results["settings"]["subscribers"]:
            b, lat = r["burst"][str(count)], r["latency"][str(count)]
            rows.append(f"| {label} | {count:,} | {fmt(b['deliveries_per_second'])} | {fmt(b.get('cpu_us_per_delivery'), 1)} "
                        f"| {fmt(lat['p50_ms'], 1)} | {fmt(lat['p99_ms'], 1)} | {fmt(lat['max_ms'], 1)} |")
    return rows


def creates_table(results: dict[str, Any]) -> list[str]:
    c, s = results.get("creates"), results["settings"]
    if not ok(c):
        return ["Not measured in this run."]
    rows = [
        "| database | writers → rooms | creates/s, log on | creates/s, log off | on ÷ off | p99 ms on / off | errors on / off |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for database, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        d = c.get(database)
        if not ok(d):
            rows.append(f"| {label} | — | {(d or {}).get('error', 'not measured')} | | | | |")
            continue
        for case, writers in (("one_room", f"{s['create_writers']} → 1"), ("rooms", f"{s['create_writers']} → {s['create_rooms']}")):
            on, off = d[case]["on"], d[case]["off"]
            ratio = on["creates_per_second"] / off["creates_per_second"] if off["creates_per_second"] else None
            rows.append(
                f"| {label} | {writers} | {fmt(on['creates_per_second'])} | {fmt(off['creates_per_second'])} | {fmt(ratio, 2)} "
                f"| {fmt(on['p99_ms'])} / {fmt(off['p99_ms'])} | {sum(on['errors'].values())} / {sum(off['errors'].values())} |"
            )
    return rows


def storm_table(results: dict[str, Any]) -> list[str]:
    r = results.get("storm")
    if not ok(r):
        return ["Not measured in this run" + (f": {r['error']}" if r else ".")]
    return [
        "| subscribers reset at once | events/s published | all resubscribed | all recovered | recovery p50 / p99 "
        "| events replayed | missing | duplicates | not recovered | reconnect errors |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {r['clients']:,} | {r['rate']} | {fmt(r['all_resubscribed_s'], 2)} s | {fmt(r['all_recovered_s'], 2)} s "
        f"| {fmt(r['recovery_p50_s'], 2)} / {fmt(r['recovery_p99_s'], 2)} s | {r.get('replayed', 0):,} | {r['missing']} "
        f"| {r['duplicates']} | {r['not_recovered']} | {r['reconnect_errors']} |",
    ]


def layer_line(results: dict[str, Any], n: str) -> str:
    if not (ok(results.get("project")) and ok(results.get("project_core_layer"))):
        return "Channel layer comparison: not measured in this run."
    project, core = results["project"], results["project_core_layer"]
    return (
        "Channel layer, measured on RetroChat itself (uvicorn, 1 process): "
        f"pub/sub layer {fmt(project['burst'][n]['deliveries_per_second'])} deliveries/s, "
        f"p99 {fmt(project['latency'][n]['p99_ms'], 1)} ms; "
        f"core layer {fmt(core['burst']['deliveries_per_second'])} deliveries/s "
        f"({fmt(core['burst'].get('cpu_us_per_delivery'), 1)} µs CPU each), "
        f"p99 {fmt(core['latency']['p99_ms'], 1)} ms, {core['burst']['lost'] + core['latency']['lost']} lost."
    )


def two_line(results: dict[str, Any], s: dict[str, Any]) -> str:
    two = results.get("project_two_processes")
    if not ok(two):
        return "Two RetroChat processes: not measured in this run."
    line = (f"Two RetroChat processes behind the same Redis ({s['main_subscribers']:,} subscribers split between them, "
            f"publishing through the first): {fmt(two['deliveries_per_second'])} deliveries/s, {two['lost']} lost.")
    if "servers_cpu_s" in two and two.get("wall_s"):
        cores = results["machine"]["cores"]
        used = sum(two["servers_cpu_s"]) + two["loadgen_cpu_s"]
        line += (f" CPU during that burst: the two processes {' s + '.join(fmt(c, 2) for c in two['servers_cpu_s'])} s, "
                 f"the load generator {fmt(two['loadgen_cpu_s'], 2)} s, in {fmt(two['wall_s'], 2)} s of wall time on "
                 f"{cores} cores ({fmt(100 * used / (cores * two['wall_s']))} % of the machine, Redis and the kernel's "
                 "loopback work not counted).")
    return line


def granian_line(results: dict[str, Any], n: str) -> str:
    if not (ok(results.get("project")) and ok(results.get("project_granian"))):
        return "granian: not measured in this run."
    u, g = results["project"], results["project_granian"]
    return (
        f"granian vs uvicorn on RetroChat ({n} subscribers): {fmt(g['burst'][n]['deliveries_per_second'])} vs "
        f"{fmt(u['burst'][n]['deliveries_per_second'])} deliveries/s, {fmt(g['burst'][n].get('cpu_us_per_delivery'), 1)} vs "
        f"{fmt(u['burst'][n].get('cpu_us_per_delivery'), 1)} µs CPU per delivery, p99 {fmt(g['latency'][n]['p99_ms'], 1)} vs "
        f"{fmt(u['latency'][n]['p99_ms'], 1)} ms, {fmt(g['connect']['connections_per_second'])} vs "
        f"{fmt(u['connect']['connections_per_second'])} connections/s, {fmt(g['memory']['kib_per_connection'], 1)} vs "
        f"{fmt(u['memory']['kib_per_connection'], 1)} KiB per connection (granian's worker process included). "
        "Whether it could be the default: see \"granian\" in the notes below."
    )


def main() -> None:
    results = json.loads(RESULTS.read_text())
    chart(results)
    m, s = results["machine"], results["settings"]
    n = str(s["main_subscribers"])
    lines = [
        "# Benchmarks",
        "",
        f"Regenerated by `make bench` (bench/run.py, then bench/report.py) from `{RESULTS.relative_to(ROOT) if RESULTS.is_relative_to(ROOT) else RESULTS}`.",
        "Every figure below comes from one run, on one machine, with one load generator.",
        "",
        f"- Run: {results['started']} → {results['finished']}" + (" (**quick mode**: small sizes, a smoke run; its figures mean nothing)" if m.get("quick") else ""),
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux {m['kernel']}; Python {m['python']}; Node {m['node']}.",
        "  Servers, Redis, PostgreSQL and the load generator share the same cores.",
        "",
        "## Method",
        "",
        "- Each server is started fresh as one process (unless said otherwise) with the Redis channel layer (or Redis adapter) on the local Redis.",
        "  Before each burst, latency and connect measurement the run waits until the server is idle (under 5 % of a core for 0.2 s, at",
        "  most 15 s): the sockets of the previous measurement are still being closed for a while after its load generator exits.",
        "- Servers: RetroChat under uvicorn (the default), daphne and granian (measured only); the peers python-socketio",
        "  (`AsyncServer` as an ASGI app under uvicorn with uvloop, `AsyncRedisManager`, `enter_room` / `emit(room=…)`,",
        "  bench/baselines/pysocketio/) and Node socket.io with `@socket.io/redis-adapter` (bench/baselines/nodesocketio/), both written",
        "  as their docs show; the Channels tutorial design (naive) and a bare `websockets` broadcast. Each peer and baseline has an",
        "  HTTP `POST /publish/<channel>` endpoint.",
        "- The load generator is `bench/loadgen/loadgen.js` (Node; `ws`, or `socket.io-client` with the websocket transport and one",
        "  connection per socket for the socket.io peers). It opens N sockets that all subscribe to one channel",
        "  (`{\"type\":\"subscribe\",\"channel\":\"room:1\"}`; for socket.io the acknowledged `subscribe` event), then:",
        f"  - **burst**: publishes {s['burst_deliveries']:,} / N messages (naive: fewer) with 4 requests in flight and counts deliveries until every socket has every",
        "    message; deliveries/s = deliveries ÷ (last delivery − first publish). Anything missing after 30 s is a loss.",
        "    **Server CPU per delivery**: utime + stime of the server's process tree (/proc/PID/stat, children included) read right",
        "    before the first publish and right after the last delivery, ÷ deliveries. It includes the server's publish endpoint",
        "    (for RetroChat: authentication, the database write, the event log).",
        f"  - **latency**: publishes {s['latency_rate']} messages/s for {s['latency_seconds']} s; latency is receipt time on each socket minus the moment the publish",
        "    request was sent (for RetroChat: the REST `POST /v1/rooms/1/messages`, which authenticates, writes the database and publishes on commit).",
        f"  - **connect**: opens {s['connect_count']:,} new sockets, 100 in flight, each authenticated (RetroChat: an API key in the header, checked against",
        "    the database) until the server's first frame (socket.io: `connect`).",
        f"  - **memory**: server RSS growth per open, subscribed socket while {s['hold_count']:,} are held (naive: {s['naive_hold_count']:,}: it subscribes in Redis",
        "    per connection and opens them slowly), measured first, on a fresh process.",
        f"  - **creates** (RetroChat only): {s['create_writers']} concurrent keep-alive HTTP clients `POST /v1/rooms/{{id}}/messages` for {s['create_seconds']} s,",
        f"    all to one room and spread over {s['create_rooms']} rooms, on SQLite and on PostgreSQL, with the event log on and with",
        "    `RETROCHAT_EVENT_LOG=0` (measurement only: no log row, no offsets, nothing recoverable); a fresh database and server per case.",
        f"  - **reconnect storm** (RetroChat only): {s['storm_clients']:,} subscribed sockets while {s['storm_rate']} messages/s are published through REST;",
        "    every TCP connection is reset at once (RST), and every client reconnects at once and subscribes with `since` (its last offset).",
        "    Recovered = `subscribed` with `recovered: true` and every offset up to the one it names received. After 2 s more of events the",
        "    publisher stops and every client must hold every offset after its first `subscribed` up to the stream's head exactly once.",
        "- RetroChat runs with `DEBUG=0`, SQLite (PostgreSQL where said), throttling off and the per-user connection limit raised (all sockets use one key).",
        "- The publish endpoints of the baselines and peers do no authentication and no database write; RetroChat's does both for every message.",
        "",
        *failures(results),
        "## Results",
        "",
        *table(results),
        "",
        f"![deliveries per second and p99 latency by subscribers]({CHART.name})",
        "",
        *detail(results),
        "",
        layer_line(results, n),
        "",
        two_line(results, s),
        "",
        granian_line(results, n),
        "",
        "## Lossless delivery: what the event log costs",
        "",
        "REST message creates per second (RetroChat under uvicorn, one process):",
        "",
        *creates_table(results),
        "",
        "Reconnect storm (RetroChat under uvicorn, one process, SQLite):",
        "",
        *storm_table(results),
        "",
        "## Targets (performance round 2; the event log on)",
        "",
        *targets(results),
        "",
    ]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC} and {CHART}")


if __name__ == "__main__":
    main()
