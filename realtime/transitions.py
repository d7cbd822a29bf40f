"""What happens when a user comes online or goes offline (SPEC §3.6): events and `last_seen_at`."""
import asyncio
import logging
import weakref

from django.utils import timezone

from realtime import events, presence
from realtime.db import realtime_db
from realtime.publish import publish_now
from users.models import User

logger = logging.getLogger("retrochat.presence")


def _store_last_seen(user_id: int, at: object) -> None:
    # update(): last_seen_at is not part of the public profile, so this is no `user:updated`.
    User.objects.filter(pk=user_id).update(last_seen_at=at)


# One lock per user with a transition in flight: transitions are published in the order the
# presence registry made them. Without it, `went_offline` (which stores last_seen_at first) was
# overtaken by the `went_online` of a connection opened meanwhile, and watchers saw online, online,
# offline while the user was online. The order holds within a process: `went_offline` takes the
# lock without suspending after the registry answers, and the transition after a `went_online` needs
# that connection closed, which waits for its connect() (and so its `went_online`) to finish.
_order: "weakref.WeakValueDictionary[int, asyncio.Lock]" = weakref.WeakValueDictionary()


def _lock(user_id: int) -> asyncio.Lock:
    lock = _order.get(user_id)
    if lock is None:
        lock = _order[user_id] = asyncio.Lock()
    return lock


async def went_online(user_id: int) -> None:
    async with _lock(user_id):
        logger.info("user %s online", user_id)
        await publish_now(events.user_presence(user_id, status=presence.ONLINE, at=timezone.now()))


async def went_offline(user_id: int) -> None:
    async with _lock(user_id):
        logger.info("user %s offline", user_id)
        now = timezone.now()
        await realtime_db(_store_last_seen)(user_id, now)
        await publish_now(events.user_presence(user_id, status=presence.OFFLINE, at=now))
