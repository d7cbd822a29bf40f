"""Prometheus metrics at /metrics, summed over every server process (issue 4, "Operations").

Each process counts in memory. With REDIS_URL set, a background thread writes this process's
snapshot to Redis every PUBLISH_SECONDS (key `P:metrics:<process id>`, expiring after
EXPIRY_SECONDS), and /metrics on any process answers the sum of every live process's snapshot,
so a scrape through a load balancer sees the whole cluster. A process that stops drops out of the
sums when its key expires; Prometheus treats the resulting drop of a counter as a reset.
"""
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger("retrochat.metrics")

PUBLISH_SECONDS = 5
EXPIRY_SECONDS = 30
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROCESS_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

_HELP = {
    "retrochat_connections_open": ("gauge", "Open WebSocket connections."),
    "retrochat_subscriptions": ("gauge", "Subscriptions (channel and event filter pairs) on open connections."),
    "retrochat_events_published_total": ("counter", "Events handed to the channel layer, by event type."),
    "retrochat_events_delivered_total": ("counter", "Event frames written to WebSocket connections."),
    "retrochat_errors_total": ("counter", "Error answers, by code and transport (ws or http)."),
    "retrochat_delivery_latency_seconds": ("histogram", "From publishing an event to writing it to the last local socket."),
    "retrochat_processes": ("gauge", "Server processes whose metrics are included."),
    "retrochat_slow_consumer_closes_total": ("counter", "Connections closed with 4008 because they did not read fast enough."),
    "retrochat_recoveries_total": ("counter", "Subscribes with `since`, by outcome (recovered or not)."),
    "retrochat_events_replayed_total": ("counter", "Missed events sent on subscribe with `since`."),
    "retrochat_gap_fills_total": ("counter", "Times a process read missed events of a channel from the event log."),
    "retrochat_credential_revalidations_total": ("counter", "Periodic re-validations of the credentials of every open connection."),
}


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[str, float]] = {}
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, labels: str = "", by: float = 1) -> None:
        """`labels` is the rendered label set, e.g. `code="FORBIDDEN",transport="ws"`."""
        with self._lock:
            series = self.counters.setdefault(name, {})
            series[labels] = series.get(labels, 0) + by

    def observe_latency(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))
        with self._lock:
            self.latency_buckets[index] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counters = {name: dict(series) for name, series in self.counters.items()}
            latency = {"buckets": list(self.latency_buckets), "sum": self.latency_sum, "count": self.latency_count}
        gauges = {}
        for name, read in self.gauges.items():
            try:
                gauges[name] = float(read())
            except Exception:  # a gauge must never break the scrape
                logger.exception("metrics: gauge %s failed", name)
        return {"counters": counters, "latency": latency, "gauges": gauges}


registry = Registry()


def inc(name: str, labels: str = "", by: float = 1) -> None:
    registry.inc(name, labels, by)
    _ensure_publisher()


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "counters": {},
        "gauges": {},
        "latency": {"buckets": [0] * (len(LATENCY_BUCKETS) + 1), "sum": 0.0, "count": 0},
    }
    for snap in snapshots:
        for name, series in snap.get("counters", {}).items():
            merged = total["counters"].setdefault(name, {})
            for labels, value in series.items():
                merged[labels] = merged.get(labels, 0) + value
        for name, value in snap.get("gauges", {}).items():
            total["gauges"][name] = total["gauges"].get(name, 0) + value
        latency = snap.get("latency", {})
        for i, count in enumerate(latency.get("buckets", [])):
            total["latency"]["buckets"][i] += count
        total["latency"]["sum"] += latency.get("sum", 0.0)
        total["latency"]["count"] += latency.get("count", 0)
    total["gauges"]["retrochat_processes"] = len(snapshots)
    return total


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(total: dict[str, Any]) -> str:
    lines: list[str] = []

    def header(name: str) -> None:
        kind, text = _HELP[name]
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])

    for name in ("retrochat_connections_open", "retrochat_subscriptions", "retrochat_processes"):
        header(name)
        lines.append(f"{name} {_number(total['gauges'].get(name, 0))}")
    # Every counter in _HELP (the realtime core's counters were declared but never rendered, so
    # /metrics lacked retrochat_slow_consumer_closes_total & co.). An unlabelled counter reads 0
    # before its first increment, so that a scrape (or a test) can tell "none yet" from "missing".
    labelled = {"retrochat_events_published_total", "retrochat_errors_total", "retrochat_recoveries_total"}
    for name in (name for name, (kind, _) in _HELP.items() if kind == "counter"):
        header(name)
        series = total["counters"].get(name, {})
        if not series and name not in labelled:
            lines.append(f"{name} 0")
        for labels, value in sorted(series.items()):
            lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    header("retrochat_delivery_latency_seconds")
    cumulative = 0
    latency = total["latency"]
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), latency["buckets"]):
        cumulative += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        lines.append(f'retrochat_delivery_latency_seconds_bucket{{le="{le}"}} {cumulative}')
    lines.append(f"retrochat_delivery_latency_seconds_sum {_number(latency['sum'])}")
    lines.append(f"retrochat_delivery_latency_seconds_count {latency['count']}")
    return "\n".join(lines) + "\n"


# --- sharing across processes ------------------------------------------------------------------
_publisher_started = False
_publisher_lock = threading.Lock()


def _redis() -> Any:
    from retrochat import redis_config

    return redis_config.sync_client(settings.REDIS_URL)


def _key(process_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:metrics:{process_id}"


def _ensure_publisher() -> None:
    global _publisher_started
    if _publisher_started or not settings.REDIS_URL:
        return
    with _publisher_lock:
        if _publisher_started:
            return
        _publisher_started = True
        threading.Thread(target=_publish_forever, name="retrochat-metrics", daemon=True).start()


def _publish_forever() -> None:
    client = _redis()
    while True:
        try:
            client.set(_key(PROCESS_ID), json.dumps(registry.snapshot()), ex=EXPIRY_SECONDS)
        except Exception as exc:  # Redis down: the next round tries again
            logger.warning("metrics: could not publish the snapshot: %s", exc.__class__.__name__)
        time.sleep(PUBLISH_SECONDS)


def cluster_snapshots() -> list[dict[str, Any]]:
    """This process's fresh snapshot plus every other live process's last one."""
    _ensure_publisher()
    own = registry.snapshot()
    if not settings.REDIS_URL:
        return [own]
    try:
        client = _redis()
        keys = [k for k in client.scan_iter(match=_key("*"), count=500) if k.decode() != _key(PROCESS_ID)]
        others = [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []
    except Exception as exc:
        logger.warning("metrics: other processes unavailable (%s); answering this process only", exc.__class__.__name__)
        others = []
    return [own, *others]
