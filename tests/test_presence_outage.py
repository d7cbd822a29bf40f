"""Connections accepted while the presence registry could not be reached (Redis away) are registered
by the hub's next presence round, with the transition the registry answers; one that closed while
it was being registered does not keep its user online. The live behaviour through a real outage is
in tests/test_faults.py."""
import pytest

from realtime import presence, transitions
from realtime.hub import Hub


class Unregistered:
    """An open connection the registry has not seen (the consumer's fail-open)."""

    def __init__(self, user_id: int, connection_id: str) -> None:
        self.user_id, self.connection_id = user_id, connection_id
        self.presence_pending = True


@pytest.fixture
def world(monkeypatch):
    hub, registry = Hub(), presence.LocalPresence()
    announced: list[tuple[str, int]] = []

    async def went_online(user_id: int) -> None:
        announced.append(("online", user_id))

    async def went_offline(user_id: int) -> None:
        announced.append(("offline", user_id))

    monkeypatch.setattr(transitions, "went_online", went_online)
    monkeypatch.setattr(transitions, "went_offline", went_offline)
    return hub, registry, announced


async def test_a_pending_connection_is_registered_and_its_user_goes_online(world):
    hub, registry, announced = world
    tab = Unregistered(7, "a")
    hub.connections.add(tab)  # type: ignore[arg-type]
    await hub._register_pending_presence(registry)
    assert (tab.presence_pending, registry.status_of(7), announced) == (False, presence.ONLINE, [("online", 7)])


async def test_a_user_online_through_another_connection_is_no_new_transition(world):
    hub, registry, announced = world
    await registry.open(7, "registered", 50)
    hub.connections.add(Unregistered(7, "pending"))  # type: ignore[arg-type]
    await hub._register_pending_presence(registry)
    assert announced == []
    assert await registry.close(7, "registered") is False  # the pending one keeps the user online


async def test_the_connection_limit_does_not_refuse_a_connection_already_open(world):
    hub, registry, announced = world
    for index in range(3):
        await registry.open(7, f"full-{index}", 3)
    tab = Unregistered(7, "pending")
    hub.connections.add(tab)  # type: ignore[arg-type]
    await hub._register_pending_presence(registry)
    assert tab.presence_pending is False
    assert registry._connections[7] == {"full-0", "full-1", "full-2", "pending"}


async def test_a_connection_that_closed_while_being_registered_leaves_no_entry(world, monkeypatch):
    hub, registry, announced = world
    tab = Unregistered(7, "a")
    hub.connections.add(tab)  # type: ignore[arg-type]
    open_entry = registry.open

    async def closed_during_open(user_id: int, connection_id: str, limit: int) -> int:
        outcome = await open_entry(user_id, connection_id, limit)
        hub.connections.discard(tab)  # type: ignore[arg-type]  # its clean-up ran meanwhile and found no entry
        return outcome

    monkeypatch.setattr(registry, "open", closed_during_open)
    await hub._register_pending_presence(registry)
    assert (registry.status_of(7), announced) == (presence.OFFLINE, [])  # never shown online: nothing to take back


async def test_a_connection_that_closed_while_being_registered_as_its_users_last_takes_the_user_offline(world, monkeypatch):
    hub, registry, announced = world
    await registry.open(7, "other", 50)
    tab = Unregistered(7, "a")
    hub.connections.add(tab)  # type: ignore[arg-type]
    open_entry = registry.open

    async def both_closed_during_open(user_id: int, connection_id: str, limit: int) -> int:
        outcome = await open_entry(user_id, connection_id, limit)
        assert await registry.close(7, "other") is False  # the other tab's clean-up: not the last entry
        hub.connections.discard(tab)  # type: ignore[arg-type]
        return outcome

    monkeypatch.setattr(registry, "open", both_closed_during_open)
    await hub._register_pending_presence(registry)
    assert (registry.status_of(7), announced) == (presence.OFFLINE, [("offline", 7)])


async def test_nothing_is_registered_while_the_registry_stays_away(world, monkeypatch):
    hub, registry, announced = world
    tab = Unregistered(7, "a")
    hub.connections.add(tab)  # type: ignore[arg-type]

    async def unreachable(*args: object) -> int:
        raise ConnectionRefusedError()

    monkeypatch.setattr(registry, "open", unreachable)
    with pytest.raises(presence.UNREACHABLE):
        await hub._register_pending_presence(registry)
    assert (tab.presence_pending, announced) == (True, [])
