"""Who is online.

A user is online while at least one of their connections is open on any server process; they go
offline when the last one closes. Each open connection is registered with an expiry that its
process refreshes every TTL/3 (`refresh_seconds()`); a process that dies stops refreshing, its
connections expire after RETROCHAT_PRESENCE_TTL, and the sweep (every RETROCHAT_PRESENCE_SWEEP, on
every process) takes them offline: within TTL + SWEEP = 50 s of the last refresh, under 60 s.

Two backends with one behaviour:
- `LocalPresence`: this process's memory, the whole truth for the embedded default (one process);
- `RedisPresence` (REDIS_URL set): sorted sets in Redis changed by Lua scripts, so that each
  transition is atomic across processes: exactly one `user:online` when the first connection
  anywhere opens and one `user:offline` when the last one closes or expires.

Keys (`P` = RETROCHAT_REDIS_PREFIX): `P:presence:user:<user id>` (connection id → expiry) and
`P:presence:connections` (`<user id>:<connection id>` → expiry), the sweep's index. A user key
itself expires 10 minutes after its newest entry, only as garbage collection: it must outlive its
entries so that the sweep finds them and announces the offline transition.
"""
import asyncio
import hashlib
import logging
import time
import weakref
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from retrochat import redis_config

logger = logging.getLogger("retrochat.presence")

ONLINE = "online"
OFFLINE = "offline"



def refresh_seconds() -> int:
    return max(1, settings.RETROCHAT_PRESENCE_TTL // 3)

# What open() answers.
LIMIT_REACHED = -1  # the user already has the maximum number of connections; nothing registered
ALREADY_ONLINE = 0
WENT_ONLINE = 1  # the user's first connection anywhere
UNREGISTERED = -2  # not answered by the registry (the consumer's fail-open); the hub registers it later

# The registry could not be reached. Connections are not refused for it (realtime/consumer.py):
# presence is the one thing an outage costs, not service.
UNREACHABLE = redis_config.UNREACHABLE


class LocalPresence:
    """Connections of this process only."""

    def __init__(self) -> None:
        self._connections: dict[int, set[str]] = {}

    async def open(self, user_id: int, connection_id: str, limit: int) -> int:
        """Register a connection: 1 if the user just came online, 0 if already online, LIMIT_REACHED."""
        connections = self._connections.setdefault(user_id, set())
        if len(connections) >= limit:
            if not connections:
                self._connections.pop(user_id, None)
            return LIMIT_REACHED
        connections.add(connection_id)
        return WENT_ONLINE if len(connections) == 1 else ALREADY_ONLINE

    async def close(self, user_id: int, connection_id: str) -> bool:
        """Unregister a connection; True when it was the user's last (they went offline)."""
        connections = self._connections.get(user_id)
        if not connections or connection_id not in connections:
            return False
        connections.discard(connection_id)
        if connections:
            return False
        del self._connections[user_id]
        return True

    async def refresh(self, connections: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Nothing expires in memory: the process that holds the connections is the one that counts."""
        return []

    async def sweep(self) -> list[int]:
        return []

    def status_of(self, user_id: int) -> str:
        return ONLINE if self._connections.get(user_id) else OFFLINE

    def online_among(self, user_ids: list[int]) -> list[int]:
        return [user_id for user_id in user_ids if self._connections.get(user_id)]


# KEYS: user set, connection index. ARGV: connection id, index member, now, expiry, limit.
_OPEN = """
local live = redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf')
if live >= tonumber(ARGV[5]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.floor((tonumber(ARGV[4]) + 600) * 1000))
if live == 0 then return 1 end
return 0
"""

# KEYS: user set, connection index. ARGV: connection id, index member, now.
_CLOSE = """
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf') == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: connection index. ARGV: now, user key prefix, batch size.
# Not cluster-safe (it touches user keys it was not given); RetroChat uses one Redis (or Sentinel).
_SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local offline = {}
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  local sep = string.find(member, ':', 1, true)
  local user_id = string.sub(member, 1, sep - 1)
  local user_key = ARGV[2] .. user_id
  if redis.call('ZREM', user_key, string.sub(member, sep + 1)) == 1 then
    if redis.call('ZCOUNT', user_key, ARGV[1], '+inf') == 0 then
      redis.call('DEL', user_key)
      table.insert(offline, user_id)
    end
  end
end
return offline
"""

# KEYS: user set, connection index. ARGV: connection id, index member, expiry.
# 0 when the entry is gone: a sweep took it (its process could not refresh it in time) or it closed.
_REFRESH = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.floor((tonumber(ARGV[3]) + 600) * 1000))
return 1
"""


class ScriptBatches:
    """Scripts of many connections sent to Redis in one pipeline per round trip: while a batch is in
    flight, the next one gathers. A connect storm then costs one write, one read and one pipeline per
    batch instead of a command (with its task, timeout and pool checkout) per connection. Each
    script stays atomic and they run in the order they were asked for, so the per-user limit and
    the exactly-once online/offline transitions are what they were with one EVAL each. Scripts go
    by EVALSHA; one Redis does not know yet (a restart, SCRIPT FLUSH) is sent again with EVAL."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((script, (numkeys, *keys_and_args), future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._execute(batch)
                except Exception as exc:  # Redis unreachable: every caller of the batch sees it
                    results = [exc] * len(batch)
                except BaseException:  # this task was cancelled (the loop is closing): so are its callers
                    for _, _, future in batch:
                        future.cancel()
                    raise
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None
            for _, _, future in self._pending:  # only when this task itself was cancelled
                future.cancel()
            self._pending = []

    async def _execute(self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> list[Any]:
        import redis

        async with self.client.pipeline(transaction=False) as pipe:
            for script, args, _ in batch:
                pipe.evalsha(_sha1(script), *args)
            results = list(await pipe.execute(raise_on_error=False))
        unknown = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
        if unknown:
            async with self.client.pipeline(transaction=False) as pipe:
                for i in unknown:
                    script, args, _ = batch[i]
                    pipe.eval(script, *args)
                for i, result in zip(unknown, await pipe.execute(raise_on_error=False), strict=True):
                    results[i] = result
        return results


_shas: dict[str, str] = {}


def _sha1(script: str) -> str:
    sha = _shas.get(script)
    if sha is None:
        sha = _shas[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


class RedisPresence:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.user_prefix = f"{prefix}:presence:user:"
        self.index_key = f"{prefix}:presence:connections"
        self._sync: Any = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ScriptBatches] = weakref.WeakKeyDictionary()

    # One async client per event loop: redis-py connections belong to the loop that opened them.
    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = redis_config.async_client(self.url)
        return client

    def _batched(self) -> ScriptBatches:
        loop = asyncio.get_running_loop()
        batches = self._batches.get(loop)
        if batches is None:
            batches = self._batches[loop] = ScriptBatches(self._client())
        return batches

    def _keys(self, user_id: int) -> list[str]:
        return [f"{self.user_prefix}{user_id}", self.index_key]

    async def open(self, user_id: int, connection_id: str, limit: int) -> int:
        now = time.time()
        return int(
            await self._batched().run(
                _OPEN, 2, *self._keys(user_id), connection_id, f"{user_id}:{connection_id}", now, now + settings.RETROCHAT_PRESENCE_TTL, limit
            )
        )

    async def close(self, user_id: int, connection_id: str) -> bool:
        result = await self._batched().run(
            _CLOSE, 2, *self._keys(user_id), connection_id, f"{user_id}:{connection_id}", time.time()
        )
        return int(result) == 1

    async def refresh(self, connections: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Extend the entries of these open connections; those whose entry is gone (swept after their
        process could not refresh them for a TTL, a Redis outage; or closed meanwhile), not re-added:
        the caller registers again the ones still open, with the transition that takes."""
        expiry = time.time() + settings.RETROCHAT_PRESENCE_TTL
        async with self._client().pipeline(transaction=False) as pipe:
            for user_id, connection_id in connections:
                pipe.eval(_REFRESH, 2, *self._keys(user_id), connection_id, f"{user_id}:{connection_id}", expiry)
            found = await pipe.execute()
        return [connection for connection, present in zip(connections, found, strict=True) if not present]

    async def sweep(self) -> list[int]:
        offline = await self._client().eval(_SWEEP, 1, self.index_key, time.time(), self.user_prefix, 1000)
        return [int(user_id) for user_id in offline]

    def status_of(self, user_id: int) -> str:
        """Synchronous, for REST and subscription checks. With Redis unreachable: `offline`, logged."""
        import redis

        if self._sync is None:
            self._sync = redis_config.sync_client(self.url)
        try:
            live = self._sync.zcount(f"{self.user_prefix}{user_id}", time.time(), "+inf")
        except redis.RedisError as exc:
            logger.warning("presence: Redis unavailable (%s); reporting user %s offline", exc.__class__.__name__, user_id)
            return OFFLINE
        return ONLINE if live else OFFLINE

    def online_among(self, user_ids: list[int]) -> list[int]:
        """The users online now, of those given, in one round trip. With Redis unreachable: none, logged."""
        import redis

        if self._sync is None:
            self._sync = redis_config.sync_client(self.url)
        now = time.time()
        try:
            with self._sync.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.zcount(f"{self.user_prefix}{user_id}", now, "+inf")
                counts = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("presence: Redis unavailable (%s); reporting %d users offline", exc.__class__.__name__, len(user_ids))
            return []
        return [user_id for user_id, live in zip(user_ids, counts, strict=True) if live]


_backend: LocalPresence | RedisPresence | None = None


def backend() -> LocalPresence | RedisPresence:
    global _backend
    if _backend is None:
        _backend = (
            RedisPresence(settings.REDIS_URL, settings.REDIS_PREFIX) if settings.REDIS_URL else LocalPresence()
        )
    return _backend


@receiver(setting_changed)
def _forget_backend(setting: str, **kwargs: Any) -> None:
    """Tests that change where presence lives get a backend for the new settings."""
    global _backend
    if setting in ("REDIS_URL", "REDIS_PREFIX"):
        _backend = None


def status_of(user_id: int) -> str:
    return backend().status_of(user_id)


def online_among(user_ids: list[int]) -> list[int]:
    return backend().online_among(user_ids) if user_ids else []
