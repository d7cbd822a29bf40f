"""Per-user throttling of REST writes (`RETROCHAT_WRITE_THROTTLE`, SPEC §3.5)."""
from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle


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
        return super().allow_request(request, view)
