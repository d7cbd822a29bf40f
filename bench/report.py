"""Turn bench/results/latest.json into docs/benchmarks.md and docs/benchmarks.png (`make bench`)."""
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"
NOTES = ROOT / "bench" / "notes.md"

SERVERS = [
    ("project", "RetroChat (uvicorn, default)"),
    ("project_daphne", "RetroChat (daphne)"),
    ("naive", "naive: Channels tutorial design"),
    ("bare", "bare: `websockets` broadcast"),
]


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def table(results: dict[str, Any]) -> list[str]:
    n = str(results["settings"]["main_subscribers"])
    rows = [
        f"| server | burst deliveries/s ({n} subs) | losses | p50 ms | p99 ms (10 msg/s) | new connections/s | KiB per connection |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in SERVERS:
        r = results.get(key)
        if not r:
            continue
        burst, latency = r["burst"][n], r["latency"][n]
        rows.append(
            f"| {label} | {fmt(burst['deliveries_per_second'])} | {burst['lost'] + latency['lost']} | {fmt(latency['p50_ms'], 1)} "
            f"| {fmt(latency['p99_ms'], 1)} | {fmt(r['connect']['connections_per_second'])} | {fmt(r['memory']['kib_per_connection'], 1)} "
            f"({r['memory']['connections']:,} held) |"
        )
    return rows


def targets(results: dict[str, Any]) -> list[str]:
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
    return [
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| burst ≥ 0.5 × bare | {burst / bare_burst:.2f} × bare ({fmt(burst)} vs {fmt(bare_burst)}) | {verdict(burst >= 0.5 * bare_burst)} |",
        f"| burst ≥ 8 × naive | {burst / naive_burst:.1f} × naive ({fmt(burst)} vs {fmt(naive_burst)}) | {verdict(burst >= 8 * naive_burst)} |",
        f"| zero losses | {lost} lost | {verdict(lost == 0)} |",
        f"| p99 ≤ 50 ms at 10 msg/s × {n} subscribers | {fmt(p99, 1)} ms | {verdict(p99 is not None and p99 <= 50)} |",
        f"| 10,000 connections at ≤ 20 KiB each | {held:,} held, {fmt(kib, 1)} KiB each | {verdict(held >= 10_000 and kib <= 20)} |",
        f"| ≥ 1,000 new authenticated connections/s | {fmt(connects)}/s | {verdict(connects >= 1000)} |",
        f"| two processes ≥ 1.6 × one | {two / burst:.2f} × ({fmt(two)} vs {fmt(burst)}) | {verdict(two >= 1.6 * burst)} |",
    ]


def chart(results: dict[str, Any]) -> None:
    counts = results["settings"]["subscribers"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in SERVERS:
        r = results.get(key)
        if not r:
            continue
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
    rows = ["| server | subscribers | burst deliveries/s | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, label in SERVERS:
        r = results.get(key)
        if not r:
            continue
        for count in results["settings"]["subscribers"]:
            b, lat = r["burst"][str(count)], r["latency"][str(count)]
            rows.append(f"| {label} | {count:,} | {fmt(b['deliveries_per_second'])} | {fmt(lat['p50_ms'], 1)} | {fmt(lat['p99_ms'], 1)} | {fmt(lat['max_ms'], 1)} |")
    return rows


def main() -> None:
    results = json.loads(RESULTS.read_text())
    chart(results)
    m, s = results["machine"], results["settings"]
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `make bench` (bench/run.py, then bench/report.py) from `bench/results/latest.json`.",
        "Every figure below comes from one run, on one machine, with one load generator.",
        "",
        f"- Run: {results['started']} → {results['finished']}" + (" (**quick mode**, smaller sizes)" if m.get("quick") else ""),
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux {m['kernel']}; Python {m['python']}; Node {m['node']}.",
        "  Servers, Redis and the load generator share the same cores.",
        "",
        "## Method",
        "",
        "- Each server is started fresh as one process (unless said otherwise) with the Redis channel layer on the local Redis.",
        "- The load generator is `bench/loadgen/loadgen.js` (Node, `ws`). It opens N sockets that all subscribe to one channel",
        "  (`{\"type\":\"subscribe\",\"channel\":\"room:1\"}`, the same frame for all three servers), then:",
        f"  - **burst**: publishes {s['burst_deliveries']:,} / N messages (naive: fewer) with 4 requests in flight and counts deliveries until every socket has every",
        "    message; deliveries/s = deliveries ÷ (last delivery − first publish). Anything missing after 30 s is a loss.",
        f"  - **latency**: publishes {s['latency_rate']} messages/s for {s['latency_seconds']} s; latency is receipt time on each socket minus the moment the publish",
        "    request was sent (for RetroChat: the REST `POST /v1/rooms/1/messages`, which authenticates, writes the database and publishes on commit).",
        f"  - **connect**: opens {s['connect_count']:,} new sockets, 100 in flight, each authenticated (RetroChat: an API key in the header, checked against",
        "    the database) until the server's first frame.",
        f"  - **memory**: server RSS growth per open, subscribed socket while {s['hold_count']:,} are held (naive: {s['naive_hold_count']:,}: it subscribes in Redis",
        "    per connection and opens them slowly), measured first, on a fresh process.",
        "- RetroChat runs with `DEBUG=0`, SQLite, throttling off and the per-user connection limit raised (all sockets use one key).",
        "- The publish endpoints of the baselines do no authentication and no database write; RetroChat's does both for every message.",
        "",
        "## Results",
        "",
        *table(results),
        "",
        "![deliveries per second and p99 latency for 100, 1,000 and 5,000 subscribers](benchmarks.png)",
        "",
        *detail(results),
        "",
        "Channel layer, measured on RetroChat itself (uvicorn, 1 process): "
        + (
            f"pub/sub layer {fmt(results['project']['burst'][str(s['main_subscribers'])]['deliveries_per_second'])} deliveries/s, "
            f"p99 {fmt(results['project']['latency'][str(s['main_subscribers'])]['p99_ms'], 1)} ms; "
            f"core layer {fmt(results['project_core_layer']['burst']['deliveries_per_second'])} deliveries/s, "
            f"p99 {fmt(results['project_core_layer']['latency']['p99_ms'], 1)} ms, "
            f"{results['project_core_layer']['burst']['lost'] + results['project_core_layer']['latency']['lost']} lost."
            if "project_core_layer" in results
            else "not measured in this run."
        ),
        "",
        f"Two RetroChat processes behind the same Redis ({s['main_subscribers']:,} subscribers split between them, publishing through the first):",
        f"{fmt(results['project_two_processes']['deliveries_per_second'])} deliveries/s, "
        f"{results['project_two_processes']['lost']} lost.",
        "",
        "## Targets (issue 5)",
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
