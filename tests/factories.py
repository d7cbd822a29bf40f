"""Test data built through the same services as production code, so signals and validation run."""
from rooms import services as rooms
from rooms.models import Conversation, Membership, Message, Room
from users import services as users
from users.models import User


def make_user(username: str, **extra: object) -> User:
    return users.user_create(username=username, display_name=username.title(), **extra)


def make_key(user: User, name: str = "test") -> str:
    _, secret = users.api_key_create(user=user, name=name)
    return secret


def make_room(owner: User, name: str = "general", *, is_private: bool = False, members: tuple[User, ...] = ()) -> Room:
    room = rooms.room_create(creator=owner, name=name, is_private=is_private)
    for member in members:
        rooms.membership_add(room=room, user=member)
    return room


def make_admin(room: Room, user: User) -> Membership:
    membership, _ = rooms.membership_add(room=room, user=user, role=Membership.Role.ADMIN)
    return membership


def make_conversation(a: User, b: User) -> Conversation:
    conversation, _ = rooms.conversation_get_or_create(user=a, other=b)
    return conversation


def make_message(author: User, *, room: Room | None = None, conversation: Conversation | None = None, content: str = "hello") -> Message:
    return rooms.message_create(author=author, room=room, conversation=conversation, content=content)
