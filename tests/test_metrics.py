"""Prometheus metrics at /metrics (issue 4, "Operations")."""
import asyncio
import time
import urllib.request

import pytest
from django.conf import settings

from retrochat import metrics
from tests import factories
from tests.live import LiveServer, recv_json, request_reply


def scrape(server: LiveServer) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_the_text_format_has_help_type_and_cumulative_buckets():
    total = metrics.merge(
        [
            {"counters": {"retrochat_errors_total": {'code="FORBIDDEN",transport="ws"': 2}}, "gauges": {"retrochat_connections_open": 3},
             "latency": {"buckets": [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "sum": 0.5, "count": 4}},
            {"counters": {"retrochat_errors_total": {'code="FORBIDDEN",transport="ws"': 1}}, "gauges": {"retrochat_connections_open": 1},
             "latency": {"buckets": [0] * 13, "sum": 0.0, "count": 0}},
        ]
    )
    text = metrics.render(total)
    assert "# TYPE retrochat_connections_open gauge\nretrochat_connections_open 4\n" in text
    assert "retrochat_processes 2\n" in text
    assert 'retrochat_errors_total{code="FORBIDDEN",transport="ws"} 3\n' in text
    assert 'retrochat_delivery_latency_seconds_bucket{le="0.001"} 1\n' in text
    assert 'retrochat_delivery_latency_seconds_bucket{le="0.005"} 3\n' in text
    assert 'retrochat_delivery_latency_seconds_bucket{le="+Inf"} 4\n' in text
    assert "retrochat_delivery_latency_seconds_count 4\n" in text


def test_a_configured_token_is_required(client, settings):
    settings.RETROCHAT_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer s3cret"}).status_code == 200


@pytest.fixture
def ada(transactional_db):
    ada = factories.make_user("ada")
    return {"key": factories.make_key(ada), "room": factories.make_room(ada)}


async def test_connections_events_and_errors_are_counted(server, ada):
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
    published = 'retrochat_events_published_total{type="message:new"}'
    assert during[published] == before.get(published, 0) + 1
    assert during["retrochat_events_delivered_total"] == before["retrochat_events_delivered_total"] + 1
    unknown = 'retrochat_errors_total{code="UNKNOWN_TYPE",transport="ws"}'
    assert during[unknown] == before.get(unknown, 0) + 1
    assert during["retrochat_delivery_latency_seconds_count"] == before["retrochat_delivery_latency_seconds_count"] + 1


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: processes share metrics through Redis")
async def test_any_process_answers_for_the_whole_cluster(ada):
    with LiveServer() as a, LiveServer() as b:
        room = ada["room"]
        published = 'retrochat_events_published_total{type="message:new"}'
        # Snapshots of other test servers may linger in Redis (they expire); count from here.
        baseline = (await asyncio.to_thread(scrape, a)).get(published, 0)
        status, _ = await b.arequest("POST", f"/v1/rooms/{room.pk}/messages", ada["key"], {"content": "on B"})
        assert status == 201
        deadline = time.monotonic() + 3 * metrics.PUBLISH_SECONDS
        while True:
            seen = await asyncio.to_thread(scrape, a)
            if seen.get(published, 0) == baseline + 1:
                break
            assert time.monotonic() < deadline, f"process B's metrics never reached A: {seen}"
            await asyncio.sleep(0.5)
        assert seen["retrochat_processes"] >= 2
