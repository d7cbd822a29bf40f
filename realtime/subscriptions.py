"""One connection's subscriptions: filters per channel, where each channel's stream stands on this
connection, and frames held back while a subscription is set up or its access re-checked.

Pure state, no I/O: the consumer (realtime/consumer.py) drives it, the hub's deliveries go through
`accept`, and every rule here is unit-tested without a database or a socket.

Positions: each channel remembers the offset and epoch of the newest event this connection has
seen, so that an event reaching it twice (live and from the log, or replayed on subscribe and then
live) is written once. Events without an offset (presence) are never deduplicated.

Holding: while a channel is held, its frames queue here in arrival order; `release` returns those
that the channel's filters (as they are then) still want and that are newer than its position.
"""
from dataclasses import dataclass, field

from realtime.channel_names import Channel
from realtime.protocol import filter_matches
from realtime.streams import LoggedEvent, Position


@dataclass(frozen=True, slots=True)
class Frame:
    """An event as delivery sees it: enough to filter and deduplicate it without decoding its text."""

    category: str
    type: str
    text: str
    offset: int | None = None
    epoch: str | None = None
    wire: bytes | None = None  # the text framed for the wire, once for every recipient


@dataclass(slots=True)
class ChannelSubscription:
    channel: Channel
    filters: dict[str, frozenset[str]] = field(default_factory=dict)  # event filter → categories granted
    # Event filter → the offset after which this connection has given its client every event the
    # filter matches (its `since` when recovered, else the position when it was added).
    starts: dict[str, int] = field(default_factory=dict)
    epoch: str | None = None
    offset: int = 0
    holds: int = 0
    held: list[Frame] = field(default_factory=list)
    # Bumped by every access change; an access check that saw it move must be done again.
    access_generation: int = 0
    # Event type → whether some filter wants it: the delivery path's answer, computed once per type
    # until the filters change (this check runs once per event per connection).
    wanted: dict[str, bool] = field(default_factory=dict)

    @property
    def position(self) -> Position:
        return Position(self.epoch or "", self.offset)

    def take(self, frame: Frame) -> bool:
        """Whether to write the frame now: past this channel's position (which moves to it), and
        wanted by a filter. Runs once per event per connection: one method, no inner calls."""
        offset = frame.offset
        if offset is not None:
            if frame.epoch != self.epoch:  # the stream was reset (or this is the first position)
                self.epoch, self.offset = frame.epoch, offset
            elif offset <= self.offset:
                return False
            else:
                self.offset = offset
        wanted = self.wanted.get(frame.type)
        if wanted is None:
            category, event_type = frame.category, frame.type
            wanted = self.wanted[event_type] = any(
                category in granted and filter_matches(f, category, event_type) for f, granted in self.filters.items()
            )
        return wanted


class Subscriptions:
    __slots__ = ("channels", "_by_name")  # one per connection

    def __init__(self) -> None:
        self.channels: dict[Channel, ChannelSubscription] = {}
        self._by_name: dict[str, ChannelSubscription] = {}  # the delivery path names channels

    # --- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        return sum(len(sub.filters) for sub in self.channels.values())

    def get(self, channel: Channel) -> ChannelSubscription | None:
        return self.channels.get(channel)

    def has(self, channel: Channel, event_filter: str) -> bool:
        sub = self.channels.get(channel)
        return sub is not None and event_filter in sub.filters

    def entries(self) -> list[tuple[Channel, list[str]]]:
        """What `list_subscriptions` answers: channels that hold at least one filter."""
        return [(channel, list(sub.filters)) for channel, sub in self.channels.items() if sub.filters]

    # --- changing --------------------------------------------------------------------------------
    def hold(self, channel: Channel) -> ChannelSubscription:
        """Start holding the channel's frames (creating its entry, with no filter yet, if needed)."""
        sub = self.channels.get(channel)
        if sub is None:
            sub = self.channels[channel] = self._by_name[str(channel)] = ChannelSubscription(channel)
        sub.holds += 1
        return sub

    def release(self, channel: Channel) -> list[str]:
        """End one hold; when none is left, the held frames to write now, in order."""
        sub = self.channels.get(channel)
        if sub is None:
            return []
        sub.holds = max(0, sub.holds - 1)
        if sub.holds:
            return []
        held, sub.held = sub.held, []
        texts = [frame.text for frame in held if sub.take(frame)]
        if not sub.filters:
            self.drop(channel)
        return texts

    def add_filter(self, channel: Channel, event_filter: str, granted: frozenset[str], *, delivered_after: int) -> None:
        sub = self.channels[channel]
        sub.filters[event_filter] = granted
        sub.wanted.clear()
        sub.starts[event_filter] = min(delivered_after, sub.starts.get(event_filter, delivered_after))

    def remove_filter(self, channel: Channel, event_filter: str | None) -> None:
        """Drop one filter (or all with None); the channel goes when it has none left and is not held."""
        sub = self.channels.get(channel)
        if sub is None:
            return
        if event_filter is None:
            sub.filters.clear()
            sub.starts.clear()
        else:
            sub.filters.pop(event_filter, None)
            sub.starts.pop(event_filter, None)
        sub.wanted.clear()
        if not sub.filters and not sub.holds:
            self.drop(channel)

    def drop(self, channel: Channel) -> None:
        self.channels.pop(channel, None)
        self._by_name.pop(str(channel), None)

    def access_changed(self, channel: Channel) -> ChannelSubscription | None:
        sub = self.channels.get(channel)
        if sub is not None:
            sub.access_generation += 1
        return sub

    # --- delivery --------------------------------------------------------------------------------
    def accept(self, channel_name: str, frame: Frame) -> bool:
        """The hub's delivery: True when the frame is to be written now; held frames wait."""
        sub = self._by_name.get(channel_name)
        if sub is None:
            return False
        if sub.holds:
            sub.held.append(frame)
            return False
        return sub.take(frame)

    @staticmethod
    def replay(sub: ChannelSubscription, event_filter: str, granted: frozenset[str], events: list[LoggedEvent]) -> list[str]:
        """The missed events a filter about to be added recovers: those it matches, up to the channel's
        position on this connection, except those a current filter has already given the client
        (it matches them and they come after that filter's start)."""
        texts = []
        for event in events:
            category = sub.channel.category_of(event.type)
            if not (category in granted and filter_matches(event_filter, category, event.type)) or event.offset > sub.offset:
                continue
            delivered = any(
                category in sub.filters[f] and filter_matches(f, category, event.type) and event.offset > start
                for f, start in sub.starts.items()
            )
            if not delivered:
                texts.append(event.text)
        return texts
