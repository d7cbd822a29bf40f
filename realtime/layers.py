"""The channel layer of the embedded default (no REDIS_URL): Channels' in-memory layer, except that
a message that expires never takes its channel out of every group.

Channels' `InMemoryChannelLayer` drops a channel from *all* its groups when one of its messages
expires (60 s unread). Here the only channel is the hub's: one stall would silently end every
revocation, access change and room delivery for the life of the process. An expired message is
still dropped (the hub refills it from the event log); memberships only end by `group_discard`.
"""
from typing import Any

from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):
    def __init__(self, **config: Any) -> None:
        config.setdefault("group_expiry", 10 * 365 * 86400)  # memberships do not lapse either
        super().__init__(**config)

    def _remove_from_groups(self, channel: str) -> None:
        """Keep the memberships of a channel whose message expired."""
