"""asyncio client for the RetroChat realtime API: states, reconnect with backoff, resubscribe with
recovery, dead-peer detection and de-duplication."""
from retrochat_client.client import Client, Subscription, backoff_delay
from retrochat_client.types import (
    ClientClosed,
    ConnectionState,
    Event,
    EventData,
    EventType,
    Item,
    MessageData,
    MessageDeletedData,
    NotRecovered,
    Position,
    PresenceSnapshot,
    RetroChatError,
    RoomData,
    RoomDeletedData,
    StateChange,
    Unsubscribed,
    UserPresenceData,
    UserUpdatedData,
)

__all__ = [
    "Client", "Subscription", "backoff_delay",
    "ClientClosed", "ConnectionState", "Event", "EventData", "EventType", "Item", "MessageData",
    "MessageDeletedData", "NotRecovered", "Position", "PresenceSnapshot", "RetroChatError", "RoomData",
    "RoomDeletedData", "StateChange", "Unsubscribed", "UserPresenceData", "UserUpdatedData",
]
