"""The realtime channel kinds of rooms and conversations, and who may subscribe to them."""
from typing import Any

from realtime import presence, protocol
from realtime.channel_names import ACTIVITY_EVENTS, CONVERSATION, MESSAGE_EVENTS, ROOM, Access, ChannelKind, register
from retrochat import ids
from rooms import access
from rooms.models import Conversation, Membership, Room
from users.models import User


class RoomChannels(ChannelKind):
    name = ROOM
    id_prefix = ids.ROOM
    categories = {"message": MESSAGE_EVENTS, "room": ("room:updated", "room:deleted"), "activity": ACTIVITY_EVENTS}
    # A room's member activity is asked for by name: a client subscribing to a room's messages is
    # not flooded with its members' comings and goings.
    opt_in = frozenset({"activity"})

    def access(self, user: User, pk: int) -> Access:
        room = Room.objects.filter(pk=pk).first()
        if room is None:
            return Access(protocol.CHANNEL_NOT_FOUND)
        if not access.can_view_room(user, room):
            return Access(protocol.FORBIDDEN)
        return Access(None, frozenset(self.categories), room)

    def presence(self, granted_access: Access, granted: frozenset[str]) -> dict[str, Any] | None:
        if "activity" not in granted:
            return None
        members = list(Membership.objects.filter(room=granted_access.subject).order_by("user_id").values_list("user_id", flat=True))
        return {"online": [ids.format_id(ids.USER, pk) for pk in presence.online_among(members)]}


class ConversationChannels(ChannelKind):
    name = CONVERSATION
    id_prefix = ids.CONVERSATION
    categories = {"message": MESSAGE_EVENTS}

    def access(self, user: User, pk: int) -> Access:
        conversation = Conversation.objects.filter(pk=pk).first()
        if conversation is None:
            return Access(protocol.CHANNEL_NOT_FOUND)
        if not access.is_participant(user, conversation):
            return Access(protocol.FORBIDDEN)
        return Access(None, frozenset(self.categories), conversation)


def register_kinds() -> None:
    register(RoomChannels())
    register(ConversationChannels())
