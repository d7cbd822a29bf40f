"""Presence scripts batched into one Redis pipeline per round trip (realtime/presence.py,
`ScriptBatches`): a connect storm keeps the per-user limit and the single online/offline transition
exactly, scripts Redis does not know yet still run, and a Redis that is away fails every caller."""
import asyncio
import uuid

import pytest
from django.conf import settings

from realtime import presence
from realtime.presence import LIMIT_REACHED, WENT_ONLINE, RedisPresence, ScriptBatches
from retrochat import redis_config

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@pytest.fixture
async def registry():
    prefix = f"test-batches-{uuid.uuid4().hex[:8]}"
    backend = RedisPresence(settings.REDIS_URL, prefix)
    yield backend
    client = redis_config.async_client(settings.REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_a_storm_of_connects_keeps_the_limit_and_one_online_transition(registry):
    outcomes = await asyncio.gather(*(registry.open(7, f"c{i}", 5) for i in range(20)))
    assert sum(outcome != LIMIT_REACHED for outcome in outcomes) == 5
    assert outcomes.count(WENT_ONLINE) == 1
    admitted = [f"c{i}" for i, outcome in enumerate(outcomes) if outcome != LIMIT_REACHED]
    assert registry.status_of(7) == presence.ONLINE
    closed = await asyncio.gather(*(registry.close(7, connection) for connection in admitted))
    assert closed.count(True) == 1  # only the last one took the user offline
    assert registry.status_of(7) == presence.OFFLINE


async def test_concurrent_calls_share_round_trips(registry, monkeypatch):
    batches = registry._batched()
    sizes: list[int] = []
    execute = batches._execute

    async def counted(batch):
        sizes.append(len(batch))
        return await execute(batch)

    monkeypatch.setattr(batches, "_execute", counted)
    await asyncio.gather(*(registry.open(user, "c", 10) for user in range(50)))
    assert sum(sizes) == 50 and len(sizes) < 50


async def test_a_script_redis_has_not_seen_is_sent_in_full():
    client = redis_config.async_client(settings.REDIS_URL)
    try:
        script = f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) + 1"  # never loaded: EVALSHA says NOSCRIPT
        assert await asyncio.gather(*(ScriptBatches(client).run(script, 0, n) for n in range(3))) == [1, 2, 3]
    finally:
        await client.aclose()


async def test_redis_away_fails_every_caller_of_the_batch():
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError

    # Nothing listens on port 1; no retries, so that the test does not wait for them.
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    batches = ScriptBatches(client)
    results = await asyncio.gather(*(batches.run("return 1", 0) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    # The failed batch did not stop the batching: the next call gets its own answer (the same error).
    (again,) = await asyncio.gather(batches.run("return 1", 0), return_exceptions=True)
    assert isinstance(again, ConnectionError)
    await client.aclose()
