"""Prometheus metrics (`prometheus_client`), exposed by every server process at /metrics.

One scrape per process, aggregation in PromQL: each process answers for itself alone, so a dead
process shows up as a failed scrape (`up == 0`) instead of vanishing inside a sum. Processes that
share one host through `make cluster` (retrochat/cluster.py) use the library's multiprocess mode
instead: with PROMETHEUS_MULTIPROC_DIR set, every process writes its values to files in that
directory and /metrics on any of them answers for all of them (gauges summed over live processes).

Call sites keep a small API: `inc(name, labels, by=)` with the label set rendered as Prometheus
writes it (`code="FORBIDDEN",transport="ws"`), `registry.gauges[name] = callable` for values read
when needed (open connections, subscriptions), and `registry.observe_latency(seconds)`. Every name
is one of the metric objects defined below; an unknown name raises (a typo is a bug, not a series).
"""
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("retrochat.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # text format 0.0.4, what every Prometheus reads
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Multiprocess mode: how often each process writes its callable gauges to its file.
GAUGE_REFRESH_SECONDS = 2.0


# No `*_created` series: Prometheus does not need them, and they double the scrape.
disable_created_metrics()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# This process's metric objects. In multiprocess mode their values live in files and the registry
# only holds them for the code below; the exposition reads the files (`exposition`).
_registry = CollectorRegistry()

_COUNTERS = {
    counter._name + "_total": counter  # prometheus_client strips `_total` from a counter's name
    for counter in (
        Counter("retrochat_events_published_total", "Events handed to the channel layer, by event type.", ["type"], registry=_registry),
        Counter("retrochat_events_delivered_total", "Event frames queued to WebSocket connections.", registry=_registry),
        Counter("retrochat_errors_total", "Error answers, by code and transport (ws or http).", ["code", "transport"], registry=_registry),
        Counter("retrochat_slow_consumer_closes_total", "Connections closed with 4008 because they did not read fast enough.", registry=_registry),
        Counter("retrochat_recoveries_total", "Subscribes with `since`, by outcome (recovered or not_recovered).", ["outcome"], registry=_registry),
        Counter("retrochat_events_replayed_total", "Missed events sent on subscribe with `since`.", registry=_registry),
        Counter("retrochat_gap_fills_total", "Times a process read missed events of a channel from the event log.", registry=_registry),
        Counter(
            "retrochat_presence_unregistered_total",
            "Connections accepted while the presence registry (Redis) could not be reached; registered once it answers.",
            registry=_registry,
        ),
        Counter("retrochat_credential_revalidations_total", "Periodic re-validations of the credentials of every open connection.", registry=_registry),
        Counter(
            "retrochat_channel_layer_errors_total",
            "Failed channel-layer operations: send (group_send of an event or control message), receive (the hub's), or join and leave (the hub's group memberships).",
            ["operation"],
            registry=_registry,
        ),
    )
}

# Gauges whose value a callable gives (registry.gauges[name] = callable). `livesum`: in
# multiprocess mode, the sum over the processes that are alive.
_GAUGES = {
    gauge._name: gauge
    for gauge in (
        Gauge("retrochat_connections_open", "Open WebSocket connections.", registry=_registry, multiprocess_mode="livesum"),
        Gauge(
            "retrochat_subscriptions", "Subscriptions (channel and event filter pairs) on open connections.",
            registry=_registry, multiprocess_mode="livesum",
        ),
        Gauge(
            "retrochat_presence_users_online",
            "Users with at least one open connection on this process (a user connected to two processes counts in both).",
            registry=_registry, multiprocess_mode="livesum",
        ),
    )
}

PROCESSES = Gauge(
    "retrochat_processes", "Server processes this scrape answers for: 1, or the live processes of a multiprocess cluster.",
    registry=_registry, multiprocess_mode="livesum",
)
PROCESSES.set(1)

DELIVERY_LATENCY = Histogram(
    "retrochat_delivery_latency_seconds", "From publishing an event to queuing it to the last local socket.",
    buckets=LATENCY_BUCKETS, registry=_registry,
)

_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_labels(labels: str) -> dict[str, str]:
    """`code="FORBIDDEN",transport="ws"` → {"code": "FORBIDDEN", "transport": "ws"}."""
    parsed: dict[str, str] = {}
    position = 0
    while position < len(labels):
        match = _LABEL.match(labels, position)
        if match is None:
            raise ValueError(f"malformed label set: {labels!r}")
        parsed[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
        position = match.end()
    return parsed


class _CallableGauges(dict):
    """`registry.gauges[name] = callable`: the callable is read at each scrape (and, in multiprocess
    mode, every GAUGE_REFRESH_SECONDS, so that a scrape through another process sees it)."""

    def __setitem__(self, name: str, read: Callable[[], float]) -> None:
        if name not in _GAUGES:
            raise KeyError(f"unknown gauge {name!r}: define it in retrochat/metrics.py")
        super().__setitem__(name, read)
        if multiprocess_dir():
            _ensure_refresher()

    def refresh(self) -> None:
        for name, read in list(self.items()):
            try:
                _GAUGES[name].set(float(read()))
            except Exception:  # a gauge must never break the scrape (or delivery)
                logger.exception("metrics: gauge %s failed", name)


class Registry:
    """What call sites reach as `metrics.registry`."""

    def __init__(self) -> None:
        self.gauges = _CallableGauges()

    @staticmethod
    def observe_latency(seconds: float) -> None:
        DELIVERY_LATENCY.observe(seconds)


registry = Registry()


def inc(name: str, labels: str = "", by: float = 1) -> None:
    """Add `by` to the counter `name`, for the label set rendered as `key="value",…` (empty: none)."""
    counter = _COUNTERS.get(name)
    if counter is None:
        raise KeyError(f"unknown counter {name!r}: define it in retrochat/metrics.py")
    if labels:
        counter.labels(**parse_labels(labels)).inc(by)
    else:
        counter.inc(by)


def names() -> set[str]:
    """Every metric family name this server exports (not counting the library's process collectors)."""
    return {
        *_COUNTERS, *_GAUGES, PROCESSES._name, DELIVERY_LATENCY._name,
        *(family.name for family in EventLogCollector().describe()),
    }


# --- the event log (one database, so any process may answer) -----------------------------------
class EventLogCollector(Collector):
    """Size and retention lag of the event log, read from the database at each scrape: `count(*)`
    and `min(created_at)` (indexed) on realtime_streamevent, which retention keeps bounded."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("retrochat_event_log_rows", "Rows in the event log (realtime_streamevent).")
        yield GaugeMetricFamily("retrochat_event_log_oldest_age_seconds", "Age of the oldest event in the log (0 when empty).")
        yield GaugeMetricFamily(
            "retrochat_event_log_prune_lag_seconds",
            "How far the oldest event is past RETROCHAT_HISTORY_TTL (0 when pruning keeps up).",
        )
        yield GaugeMetricFamily("retrochat_event_log_ttl_seconds", "RETROCHAT_HISTORY_TTL: how long events are kept.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from realtime.models import StreamEvent

        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*), min(created_at) FROM {StreamEvent._meta.db_table}")
                rows, oldest = cursor.fetchone()
        except DatabaseError as exc:  # the database is down: the other metrics still answer
            logger.warning("metrics: event log unavailable (%s)", exc.__class__.__name__)
            return
        if isinstance(oldest, str):  # SQLite answers the aggregate as text
            from django.utils.dateparse import parse_datetime

            oldest = parse_datetime(oldest)
        age = max(0.0, time.time() - oldest.timestamp()) if oldest is not None else 0.0
        ttl = float(settings.RETROCHAT_HISTORY_TTL)
        for family, value in zip(self.describe(), (rows, age, max(0.0, age - ttl), ttl)):
            family.add_metric([], value)
            yield family


_event_log = EventLogCollector()


# --- exposition --------------------------------------------------------------------------------
def _single_process_registry() -> CollectorRegistry:
    exposed = CollectorRegistry()
    for collector in (_registry, _event_log, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        exposed.register(collector)
    return exposed


_exposed: CollectorRegistry | None = None


def exposition() -> bytes:
    """The text format of /metrics: this process's metrics, or the whole multiprocess directory's.

    The library's process collectors (`process_*`, `python_*`) describe the answering process only,
    so they are left out in multiprocess mode, where they would pass one process off as the cluster."""
    global _exposed
    registry.gauges.refresh()
    path = multiprocess_dir()
    if path:
        exposed = CollectorRegistry()
        multiprocess.MultiProcessCollector(exposed, path=path)
        exposed.register(_event_log)
        return generate_latest(exposed)
    if _exposed is None:
        _exposed = _single_process_registry()
    return generate_latest(_exposed)


# --- multiprocess mode: callable gauges written to this process's file -------------------------
_refresher_started = False
_refresher_lock = threading.Lock()


def _ensure_refresher() -> None:
    global _refresher_started
    with _refresher_lock:
        if _refresher_started:
            return
        _refresher_started = True
        threading.Thread(target=_refresh_forever, name="retrochat-metrics", daemon=True).start()


def _refresh_forever() -> None:
    while True:
        registry.gauges.refresh()
        time.sleep(GAUGE_REFRESH_SECONDS)
