"""Redis connection settings from the environment, for the channel layer and the project's own clients.

- `REDIS_URL`: `redis://host:6379/0`, or `rediss://…` for TLS (add `?ssl_cert_reqs=required` and
  `&ssl_ca_certs=/path/ca.pem` to verify against your own CA);
- `REDIS_SENTINELS` (`host1:26379,host2:26379`) with `REDIS_SENTINEL_MASTER` (`mymaster`): Redis
  Sentinel; `REDIS_URL` then only needs to be set to anything (it switches Redis on) and its
  database number and password are used for the master;
- `REDIS_MAX_CONNECTIONS` (default 200): the size of each connection pool. redis-py's async pool
  raises MaxConnectionsError beyond it rather than waiting.
"""
import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

from redis.exceptions import RedisError

from retrochat.env import env_int, env_list, env_str

# What a call to Redis (the project's clients or the channel layer's) raises when Redis is down,
# restarting, or does not answer in time. Callers that keep serving through an outage catch these.
UNREACHABLE = (RedisError, OSError, asyncio.TimeoutError)


def sentinels() -> list[tuple[str, int]]:
    result = []
    for item in env_list("REDIS_SENTINELS", []):
        host, _, port = item.rpartition(":")
        result.append((host or item, int(port) if port.isdigit() else 26379))
    return result


def _master_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    if parts.password:
        options["password"] = parts.password
    if parts.username:
        options["username"] = parts.username
    database = parts.path.lstrip("/")
    if database.isdigit():
        options["db"] = int(database)
    if parts.scheme == "rediss":
        options["ssl"] = True
        query = parse_qs(parts.query)
        if "ssl_ca_certs" in query:
            options["ssl_ca_certs"] = query["ssl_ca_certs"][0]
    return options


def layer_hosts(url: str) -> list[dict[str, Any]]:
    """The `hosts` of a channels-redis layer."""
    max_connections = env_int("REDIS_MAX_CONNECTIONS", 200)
    master = env_str("REDIS_SENTINEL_MASTER")
    if master and sentinels():
        return [{"master_name": master, "sentinels": sentinels(), "max_connections": max_connections, **_master_options(url)}]
    return [{"address": url, "max_connections": max_connections}]


def sync_client(url: str) -> Any:
    import redis

    master = env_str("REDIS_SENTINEL_MASTER")
    if master and sentinels():
        from redis.sentinel import Sentinel

        return Sentinel(sentinels(), socket_timeout=2).master_for(master, **_master_options(url))
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def async_client(url: str) -> Any:
    import redis.asyncio as aioredis

    master = env_str("REDIS_SENTINEL_MASTER")
    if master and sentinels():
        from redis.asyncio.sentinel import Sentinel

        return Sentinel(sentinels(), socket_timeout=2).master_for(master, **_master_options(url))
    # A blocking pool: a burst of connects waits for a free connection instead of failing with
    # MaxConnectionsError (redis-py's default pool raises when it is exhausted).
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=env_int("REDIS_MAX_CONNECTIONS", 200), timeout=5, socket_timeout=5, socket_connect_timeout=2
    )
    return aioredis.Redis(connection_pool=pool)
