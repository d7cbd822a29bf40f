"""Per-connection limits: a token bucket for client frames and the abuse rule.

A frame over the rate is dropped and answered RATE_LIMITED; the connection stays open. A client
that keeps sending over the rate for `ABUSE_SECONDS` seconds in a row is closed with 4029: a burst
(even 1,000 frames in one second) is survivable, a flood is not.
"""
import time
from collections.abc import Callable

ABUSE_SECONDS = 10


class FrameRateLimiter:
    __slots__ = ("rate", "burst", "tokens", "clock", "updated", "_abuse_since", "_last_drop")  # one per connection

    def __init__(self, rate_per_second: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()
        self._abuse_since: float | None = None
        self._last_drop: float | None = None

    def allow(self) -> bool:
        """Take one token; False when the frame must be dropped."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            if self._last_drop is not None and now - self._last_drop > 1.0:
                self._abuse_since = None  # a full second without drops ends the streak
            return True
        if self._abuse_since is None or (self._last_drop is not None and now - self._last_drop > 1.0):
            self._abuse_since = now
        self._last_drop = now
        return False

    def is_abusive(self) -> bool:
        """True after `ABUSE_SECONDS` of over-rate sending with no second-long pause."""
        if self._abuse_since is None or self._last_drop is None:
            return False
        now = self.clock()
        # A second with no drop (even with no frame at all) is a pause: the streak is over.
        return now - self._last_drop <= 1.0 and now - self._abuse_since >= ABUSE_SECONDS
