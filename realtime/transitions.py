"""What happens when a user comes online or goes offline (SPEC §3.6): events and `last_seen_at`."""
import logging

from django.utils import timezone

from realtime import events, presence
from realtime.db import realtime_db
from realtime.publish import publish_now
from users.models import User

logger = logging.getLogger("retrochat.presence")


def _store_last_seen(user_id: int, at: object) -> None:
    # update(): last_seen_at is not part of the public profile, so this is no `user:updated`.
    User.objects.filter(pk=user_id).update(last_seen_at=at)


async def went_online(user_id: int) -> None:
    logger.info("user %s online", user_id)
    await publish_now(events.user_presence(user_id, status=presence.ONLINE, at=timezone.now()))


async def went_offline(user_id: int) -> None:
    logger.info("user %s offline", user_id)
    now = timezone.now()
    await realtime_db(_store_last_seen)(user_id, now)
    await publish_now(events.user_presence(user_id, status=presence.OFFLINE, at=now))
