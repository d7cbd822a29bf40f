"""The subscription state of one connection (realtime/subscriptions.py), without a database or a socket."""
from realtime.channel_names import room, user
from realtime.streams import LoggedEvent
from realtime.subscriptions import Frame, Subscriptions

ROOM = room(7)
MESSAGE = frozenset({"message"})
ROOM_CATEGORIES = frozenset({"message", "room"})


def subscribed(event_filter: str = "*", granted: frozenset[str] = ROOM_CATEGORIES, offset: int = 10) -> Subscriptions:
    subs = Subscriptions()
    sub = subs.hold(ROOM)
    sub.epoch, sub.offset = "E", offset
    subs.add_filter(ROOM, event_filter, granted, delivered_after=offset)
    assert subs.release(ROOM) == []
    return subs


def message(offset: int | None, event_type: str = "message:new", epoch: str = "E") -> Frame:
    return Frame("message", event_type, f"{event_type}#{offset}", offset, epoch if offset is not None else None)


def test_a_new_event_of_a_subscribed_channel_is_written():
    subs = subscribed()
    assert subs.accept("room:7", message(11)) is True


def test_an_event_at_or_before_the_position_is_not_written_twice():
    subs = subscribed()
    assert [subs.accept("room:7", message(n)) for n in (9, 10, 11, 11)] == [False, False, True, False]


def test_events_without_an_offset_are_never_deduplicated():
    subs = Subscriptions()
    subs.hold(user(3))
    subs.add_filter(user(3), "*", frozenset({"activity"}), delivered_after=0)
    subs.release(user(3))
    online = Frame("activity", "user:online", "online")
    assert [subs.accept("user:3", online), subs.accept("user:3", online)] == [True, True]


def test_a_new_epoch_restarts_the_position():
    subs = subscribed()
    assert subs.accept("room:7", message(1, epoch="F")) is True
    assert subs.accept("room:7", message(1, epoch="F")) is False


def test_only_granted_categories_matching_a_filter_are_written():
    subs = subscribed("message:deleted", granted=MESSAGE)
    assert subs.accept("room:7", message(11, "message:new")) is False
    assert subs.accept("room:7", message(12, "message:deleted")) is True
    assert subs.accept("room:7", Frame("room", "room:updated", "r", 13, "E")) is False


def test_events_of_other_channels_are_not_written():
    assert subscribed().accept("room:8", message(11)) is False


def test_held_frames_are_released_in_order_past_the_position_and_filtered():
    subs = subscribed()
    subs.hold(ROOM)
    for offset in (10, 11, 12):
        assert subs.accept("room:7", message(offset)) is False
    assert subs.release(ROOM) == ["message:new#11", "message:new#12"]


def test_nested_holds_release_only_when_the_last_ends():
    subs = subscribed()
    subs.hold(ROOM)
    subs.hold(ROOM)
    subs.accept("room:7", message(11))
    assert subs.release(ROOM) == []
    assert subs.release(ROOM) == ["message:new#11"]


def test_a_channel_held_without_a_filter_is_forgotten_on_release():
    subs = Subscriptions()
    subs.hold(ROOM)
    subs.accept("room:7", message(1))
    assert subs.release(ROOM) == []
    assert subs.get(ROOM) is None


def test_removing_the_last_filter_forgets_the_channel():
    subs = subscribed()
    subs.remove_filter(ROOM, "*")
    assert subs.get(ROOM) is None and subs.count() == 0 and subs.entries() == []


def test_removing_a_filter_of_a_held_channel_keeps_it_until_released():
    subs = subscribed()
    subs.hold(ROOM)
    subs.remove_filter(ROOM, None)
    assert subs.get(ROOM) is not None
    subs.release(ROOM)
    assert subs.get(ROOM) is None


def test_count_and_entries_list_filters_per_channel():
    subs = subscribed()
    subs.hold(ROOM)
    subs.add_filter(ROOM, "message:new", MESSAGE, delivered_after=10)
    subs.release(ROOM)
    assert subs.count() == 2
    assert subs.entries() == [(ROOM, ["*", "message:new"])]


def test_access_changes_move_the_generation():
    subs = subscribed()
    before = subs.get(ROOM).access_generation
    subs.access_changed(ROOM)
    assert subs.get(ROOM).access_generation == before + 1
    assert subs.access_changed(room(99)) is None


def logged(offset: int, event_type: str) -> LoggedEvent:
    return LoggedEvent("room:7", offset, "E", event_type, f"{event_type}#{offset}")


def test_replay_for_a_new_channel_is_every_missed_event_the_filter_matches():
    subs = Subscriptions()
    sub = subs.hold(ROOM)
    sub.epoch, sub.offset = "E", 4
    events = [logged(2, "message:new"), logged(3, "room:updated"), logged(4, "message:deleted")]
    assert Subscriptions.replay(sub, "message", MESSAGE, events) == ["message:new#2", "message:deleted#4"]


def test_replay_for_a_new_filter_skips_what_existing_filters_delivered():
    subs = subscribed("message:new", MESSAGE, offset=4)
    sub = subs.get(ROOM)
    sub.starts["message:new"] = 1  # it has given the client every new message after offset 1
    events = [logged(2, "message:new"), logged(3, "message:deleted"), logged(4, "message:new")]
    assert Subscriptions.replay(sub, "message", MESSAGE, events) == ["message:deleted#3"]


def test_replay_stops_at_the_connections_position():
    subs = subscribed(offset=3)
    sub = subs.get(ROOM)
    subs.remove_filter(ROOM, "*")
    sub = subs.hold(ROOM)
    sub.epoch, sub.offset = "E", 3
    assert Subscriptions.replay(sub, "*", ROOM_CATEGORIES, [logged(3, "message:new"), logged(4, "message:new")]) == ["message:new#3"]


def test_replay_gives_what_an_existing_filter_matched_but_had_not_delivered_yet():
    # `message:new` was recovered from offset 3 only; `message` now recovers from 1: the new message
    # at 2 was never given to the client, those at 3 and after were.
    subs = subscribed("message:new", MESSAGE, offset=5)
    sub = subs.get(ROOM)
    sub.starts["message:new"] = 2
    events = [logged(2, "message:new"), logged(3, "message:new"), logged(4, "message:deleted")]
    assert Subscriptions.replay(sub, "message", MESSAGE, events) == ["message:new#2", "message:deleted#4"]


def test_subscribing_a_filter_again_with_an_older_since_replays_only_the_older_part():
    subs = subscribed("message", MESSAGE, offset=5)
    sub = subs.get(ROOM)
    events = [logged(n, "message:new") for n in (3, 4, 5)]
    sub.starts["message"] = 4
    assert Subscriptions.replay(sub, "message", MESSAGE, events) == ["message:new#3", "message:new#4"]
    subs.add_filter(ROOM, "message", MESSAGE, delivered_after=2)
    assert sub.starts["message"] == 2
