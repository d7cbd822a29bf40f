"""Per-user throttling of REST writes (`RETROCHAT_WRITE_THROTTLE`)."""
import logging
from typing import Any

import redis
from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle

logger = logging.getLogger("retrochat.api")

# What a cache outage raises: Django's Redis cache backend lets redis-py's errors through.
CACHE_OUTAGE = (redis.RedisError, ConnectionError)


class WriteRateThrottle(UserRateThrottle):
    """Counts only unsafe methods; reads are never throttled. `off` disables it."""

    scope = "write"

    def get_rate(self) -> str | None:
        # Read at request time (not import time) so that the setting can change under tests.
        return settings.RETROCHAT_WRITE_THROTTLE

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except CACHE_OUTAGE as exc:
            # The shared cache (Redis) is down: fail open rather than refuse every write.
            logger.warning("throttle: cache unavailable (%s); write allowed", exc.__class__.__name__)
            return True
