"""Public ids: prefixed strings in JSON (`room_7`), bare or prefixed numbers in paths and channels.

The grammar is strict on purpose: ASCII digits only (no full-width or other Unicode digits), no sign,
no leading zeros, no exponent, and small enough for a 64-bit primary key.
"""
import re

USER = "user"
ROOM = "room"
CONVERSATION = "conv"
MESSAGE = "msg"
API_KEY = "key"

# Positive and no larger than a signed 64-bit primary key (9223372036854775807, 19 digits).
MAX_ID = 2**63 - 1
_NUMBER = r"[1-9][0-9]{0,18}"
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)


def format_id(prefix: str, pk: int) -> str:
    return f"{prefix}_{pk}"


def parse_id(prefix: str, value: object) -> int | None:
    """`7` or `room_7` (for prefix `room`) → 7; anything else → None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if text.startswith(prefix + "_"):
        text = text[len(prefix) + 1 :]
    if not _NUMBER_RE.fullmatch(text) or int(text) > MAX_ID:
        return None
    return int(text)


def path_regex(prefix: str) -> str:
    """The URL path pattern accepting both forms, for a path converter."""
    return rf"(?:{prefix}_)?{_NUMBER}"
