"""Casts that several test modules share, built through tests/factories.py (services, so signals run)."""
from dataclasses import dataclass

from rooms.models import Conversation, Room
from tests import factories
from users.models import User


@dataclass
class Cast:
    """ada owns a public room and a private one, both with bob in them, and talks with bob in a
    conversation; cy is in none of them; root is staff. Each has an API key."""

    ada: User
    bob: User
    cy: User
    root: User
    room: Room  # public, "general"
    private: Room  # private, "secret"
    conversation: Conversation
    keys: dict[int, str]

    def key(self, user: User) -> str:
        return self.keys[user.pk]

    def user(self, name: str) -> User:
        return getattr(self, name)

    @property
    def channel(self) -> str:
        """The public room's channel."""
        return f"room:{self.room.pk}"


def cast() -> Cast:
    ada, bob, cy = factories.make_user("ada"), factories.make_user("bob"), factories.make_user("cy")
    root = factories.make_user("root", is_staff=True)
    room = factories.make_room(ada, "general", members=(bob,))
    private = factories.make_room(ada, "secret", is_private=True, members=(bob,))
    conversation = factories.make_conversation(ada, bob)
    keys = {user.pk: factories.make_key(user) for user in (ada, bob, cy, root)}
    return Cast(ada, bob, cy, root, room, private, conversation, keys)
