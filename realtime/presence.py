"""Who is online (SPEC §3.6): a user is online while at least one of their connections is open.

This module keeps the count of open connections per user inside this process, which is the whole
truth for the embedded default (one process).
"""
from collections import Counter

ONLINE = "online"
OFFLINE = "offline"

_open_connections: Counter[int] = Counter()


def connection_opened(user_id: int) -> bool:
    """Count a new connection; True when it is the user's first (an offline → online transition)."""
    _open_connections[user_id] += 1
    return _open_connections[user_id] == 1


def connection_closed(user_id: int) -> bool:
    """Uncount a connection; True when it was the user's last (an online → offline transition)."""
    if _open_connections[user_id] <= 1:
        _open_connections.pop(user_id, None)
        return True
    _open_connections[user_id] -= 1
    return False


def open_connection_count(user_id: int) -> int:
    return _open_connections.get(user_id, 0)


def status_of(user_id: int) -> str:
    return ONLINE if _open_connections.get(user_id) else OFFLINE
