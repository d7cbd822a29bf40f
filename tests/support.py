"""Matchers shared by the suite's frame assertions."""
from typing import Any

import pytest

from realtime import publish


class _Offset:
    """Equal to any stream offset (a non-negative integer): for tests about something else."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool) and other >= 0

    def __repr__(self) -> str:
        return "<any offset>"


class _Epoch:
    """Equal to any stream epoch (a non-empty string)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any epoch>"


OFFSET = _Offset()
EPOCH = _Epoch()
# The stream position every `subscribed` frame carries, where a test is not about positions.
POSITION: dict[str, Any] = {"offset": OFFSET, "epoch": EPOCH}


def capture_published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Record what is handed to the channel layer after commit, as (group, message), instead of
    sending it: tests assert the exact list at the publish boundary, with no waiting."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(publish, "_send", lambda group, message: sent.append((group, message)))
    return sent
