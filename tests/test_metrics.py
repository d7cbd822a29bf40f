"""Prometheus metrics at /metrics (prometheus_client): one scrape per process, aggregation in PromQL;
multiprocess mode for processes sharing a host through `make cluster` (retrochat/cluster.py)."""
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from realtime.models import StreamEvent
from retrochat import metrics
from tests import factories
from tests.live import ROOT, LiveServer, free_port, recv_json, request_reply, server_database_url

pytestmark = pytest.mark.slow

PUBLISHED = 'retrochat_events_published_total{type="message:new"}'


def parse(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def scrape_url(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(response.read().decode())


def scrape(server: LiveServer) -> dict[str, float]:
    return scrape_url(server.http_url)


def wait_for(condition, what: str, timeout: float = 15.0):
    """Poll `condition()` until it returns a true value (returned), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# --- this process, through Django's test client ---------------------------------------------------
def test_inc_takes_the_label_set_as_call_sites_render_it():
    before = metrics._COUNTERS["retrochat_errors_total"].labels(code="FORBIDDEN", transport="ws")._value.get()
    metrics.inc("retrochat_errors_total", 'code="FORBIDDEN",transport="ws"', by=2)
    after = metrics._COUNTERS["retrochat_errors_total"].labels(code="FORBIDDEN", transport="ws")._value.get()
    assert after == before + 2
    assert metrics.parse_labels(r'code="A\"B",transport="http"') == {"code": 'A"B', "transport": "http"}


def test_an_unknown_metric_name_is_a_bug():
    with pytest.raises(KeyError, match="retrochat_typo_total"):
        metrics.inc("retrochat_typo_total")
    with pytest.raises(KeyError, match="retrochat_typo"):
        metrics.registry.gauges["retrochat_typo"] = lambda: 1


def test_every_metric_a_call_site_names_is_defined():
    """The call sites name metrics by string; each must be one of the objects in retrochat/metrics.py."""
    used = set()
    for path in [*ROOT.glob("realtime/*.py"), *ROOT.glob("retrochat/**/*.py"), *ROOT.glob("rooms/**/*.py"), *ROOT.glob("users/**/*.py")]:
        text = path.read_text()
        used.update(re.findall(r'metrics\.inc\(\s*"([a-z_]+)"', text))
        used.update(re.findall(r'metrics\.registry\.gauges\["([a-z_]+)"\]', text))
    assert "retrochat_errors_total" in used and "retrochat_connections_open" in used  # the patterns match
    assert used <= metrics.names(), used - metrics.names()


def test_the_exposition_has_help_type_cumulative_buckets_and_process_metrics(client, db):
    for seconds in (0.0005, 0.003, 0.004, 9.0):
        metrics.registry.observe_latency(seconds)
    text = client.get("/metrics").content.decode()
    assert "# TYPE retrochat_connections_open gauge\n" in text
    assert "# TYPE retrochat_errors_total counter\n" in text
    assert "# TYPE retrochat_delivery_latency_seconds histogram\n" in text
    values = parse(text)
    buckets = [values[f'retrochat_delivery_latency_seconds_bucket{{le="{le}"}}'] for le in ("0.001", "0.005", "5.0", "+Inf")]
    assert buckets == sorted(buckets) and buckets[-1] == values["retrochat_delivery_latency_seconds_count"]
    assert values["retrochat_processes"] == 1.0
    assert "process_resident_memory_bytes" in values and "process_open_fds" in values
    assert any(name.startswith("python_gc_objects_collected_total") for name in values)
    assert not any(name.endswith("_created") for name in values)


def test_a_configured_token_is_required(client, db, settings):
    settings.RETROCHAT_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_event_log_size_and_prune_lag(client, db, settings):
    ada = factories.make_user("ada")
    room = factories.make_room(ada)
    factories.make_message(ada, room=room)
    factories.make_message(ada, room=room)
    StreamEvent.objects.filter(channel=f"room:{room.pk}").update(created_at=timezone.now() - timedelta(hours=2))
    settings.RETROCHAT_HISTORY_TTL = 3600
    values = parse(client.get("/metrics").content.decode())
    assert values["retrochat_event_log_rows"] == StreamEvent.objects.count()
    assert values["retrochat_event_log_ttl_seconds"] == 3600
    assert values["retrochat_event_log_oldest_age_seconds"] >= 7200
    assert values["retrochat_event_log_prune_lag_seconds"] == pytest.approx(values["retrochat_event_log_oldest_age_seconds"] - 3600)


def test_an_empty_event_log_has_no_lag(client, db):
    StreamEvent.objects.all().delete()
    values = parse(client.get("/metrics").content.decode())
    assert (values["retrochat_event_log_rows"], values["retrochat_event_log_oldest_age_seconds"]) == (0, 0)
    assert values["retrochat_event_log_prune_lag_seconds"] == 0


# --- real server processes -----------------------------------------------------------------------
@pytest.fixture
def ada(transactional_db):
    ada = factories.make_user("ada")
    return {"key": factories.make_key(ada), "room": factories.make_room(ada), "user": ada}


async def test_connections_events_presence_and_errors_are_counted(server, ada):
    before = await asyncio.to_thread(scrape, server)
    room = ada["room"]
    async with server.connect(ada["key"]) as ws:
        assert (await recv_json(ws))["type"] == "connected"
        await request_reply(ws, {"type": "subscribe", "channel": f"room:{room.pk}"})
        status, _ = await server.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "count me"})
        assert status == 201
        assert (await recv_json(ws))["type"] == "message:new"
        await ws.send('{"type": "nope"}')  # deliberately outside the protocol: raw, not checked against docs/asyncapi.yaml
        assert (await recv_json(ws))["code"] == "UNKNOWN_TYPE"
        during = await asyncio.to_thread(scrape, server)
    assert during["retrochat_connections_open"] == before["retrochat_connections_open"] + 1
    assert during["retrochat_subscriptions"] == before["retrochat_subscriptions"] + 1
    assert during["retrochat_presence_users_online"] == before["retrochat_presence_users_online"] + 1
    assert during[PUBLISHED] == before.get(PUBLISHED, 0) + 1
    assert during["retrochat_events_delivered_total"] == before["retrochat_events_delivered_total"] + 1
    unknown = 'retrochat_errors_total{code="UNKNOWN_TYPE",transport="ws"}'
    assert during[unknown] == before.get(unknown, 0) + 1
    assert during["retrochat_delivery_latency_seconds_count"] == before["retrochat_delivery_latency_seconds_count"] + 1


async def test_each_process_exposes_its_own_counts(ada):
    with LiveServer(RETROCHAT_WRITE_THROTTLE="off") as a, LiveServer(RETROCHAT_WRITE_THROTTLE="off") as b:
        room = ada["room"]
        status, _ = await b.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "on B"})
        assert status == 201
        async with a.connect(ada["key"]) as ws:
            assert (await recv_json(ws))["type"] == "connected"
            on_a, on_b = await asyncio.to_thread(scrape, a), await asyncio.to_thread(scrape, b)
        assert (on_a.get(PUBLISHED, 0), on_b[PUBLISHED]) == (0, 1)
        assert (on_a["retrochat_connections_open"], on_b["retrochat_connections_open"]) == (1, 0)
        assert on_a["retrochat_processes"] == on_b["retrochat_processes"] == 1
        assert on_a["process_resident_memory_bytes"] > 0 and on_b["process_resident_memory_bytes"] > 0


# --- make cluster: multiprocess mode -------------------------------------------------------------
def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.mark.timeout(120)
@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the cluster's processes meet in Redis")
def test_a_cluster_answers_for_all_its_live_processes_on_any_port(ada, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"a previous run's file, unreadable: it must be removed at start")
    port = free_port(2)
    first, second = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    env = {
        **os.environ, "HOST": "127.0.0.1", "PORT": str(port), "RETROCHAT_PROCESSES": "2",
        "DATABASE_URL": server_database_url(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "RETROCHAT_WRITE_THROTTLE": "off",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "cluster.log"
    with log.open("wb") as out:
        cluster = subprocess.Popen([sys.executable, "-m", "retrochat.cluster"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _healthy(first) and _healthy(second), "both processes", timeout=60)
        assert wait_for(lambda: scrape_url(first)["retrochat_processes"] == 2, "two live processes")
        room = ada["room"]
        request = urllib.request.Request(
            f"{second}/v1/rooms/{room.pk}/messages", data=b'{"content": "via the second"}', method="POST",
            headers={"Authorization": f"Bearer {ada['key']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        assert scrape_url(first)[PUBLISHED] == 1  # counted by the second process, answered by the first
        # The second process stops; the cluster marks it dead: its gauges leave, its counters stay.
        by_port = {}
        for child in _children(cluster.pid):
            process_port = next(
                (p for p in (port, port + 1) if f"PORT={p}\0".encode() in Path(f"/proc/{child}/environ").read_bytes()), None
            )
            by_port[process_port] = child
        os.kill(by_port[port + 1], signal.SIGTERM)
        wait_for(lambda: scrape_url(first)["retrochat_processes"] == 1, "the stopped process to leave the sums")
        values = scrape_url(first)
        assert values[PUBLISHED] == 1
        assert values["retrochat_connections_open"] == 0
        assert "process_resident_memory_bytes" not in values  # one process's figures would pass for the cluster's
    finally:
        try:
            os.killpg(cluster.pid, signal.SIGTERM)
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(timeout=10)
        except ProcessLookupError:
            pass
    # A process the SIGKILL above had to stop (a shutdown slower than 60 s) is not marked dead: the log says.
    assert not list(metrics_dir.glob("gauge_livesum_*.db")), f"every process marked dead; the cluster's log:\n{log.read_text()[-3000:]}"
