"""What happens when a user comes online or goes offline: events and `last_seen_at`.

Presence events go to the user's own channel and to the channel of every room they are a member
of (room presence: one `activity` subscription on a room instead of one per member). They are not
logged: a subscriber gets the current state with `subscribed`.
"""
import asyncio
import logging
import weakref
from datetime import datetime

from django.utils import timezone

from realtime import events, presence
from realtime.db import realtime_db
from realtime.publish import publish_now
from rooms.models import Membership
from users.models import User

logger = logging.getLogger("retrochat.presence")


def _store_last_seen(user_id: int, at: object) -> None:
    # update(): last_seen_at is not part of the public profile, so this is no `user:updated`.
    User.objects.filter(pk=user_id).update(last_seen_at=at)


def _room_ids(user_id: int) -> list[int]:
    return list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))


async def _announce(user_id: int, status: str, at: datetime) -> None:
    """Best effort: a presence event that cannot be sent (Redis or the database away) is logged and
    dropped; subscribers get the current state with their next `subscribed`."""
    try:
        await publish_now(events.user_presence(user_id, status=status, at=at))
        for room_id in await realtime_db(_room_ids)(user_id):
            await publish_now(events.user_presence(user_id, status=status, at=at, room_id=room_id))
    except Exception as exc:
        logger.warning("presence: announcing user %s %s failed (%s)", user_id, status, exc.__class__.__name__)


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
        await _announce(user_id, presence.ONLINE, timezone.now())


async def went_offline(user_id: int) -> None:
    async with _lock(user_id):
        logger.info("user %s offline", user_id)
        now = timezone.now()
        try:
            await realtime_db(_store_last_seen)(user_id, now)
        except Exception as exc:  # the database is away: the offline event still goes out
            logger.warning("presence: storing last_seen_at of user %s failed (%s)", user_id, exc.__class__.__name__)
        await _announce(user_id, presence.OFFLINE, now)
