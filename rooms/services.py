"""Every write to rooms, memberships, conversations and messages.

Views, commands and the demo seeding call these; each is atomic and validates the model before it
saves. Events are not sent here: the post_save/post_delete receivers in rooms/signals.py turn the
saved rows into events on commit, so that admin and plain ORM writes emit the very same events.
Services never use QuerySet.update() or bulk_create() on watched rows: those fire no signals.
"""
from typing import cast

from django.db import IntegrityError, transaction

from retrochat.tracking import model_update

from rooms.models import Conversation, Membership, Message, RemovalReason, Room
from users.models import User


@transaction.atomic
def room_create(*, creator: User, name: str, topic: str = "", is_private: bool = False) -> Room:
    room = Room(name=name, topic=topic, is_private=is_private, created_by=creator)
    room.full_clean()
    room.save()
    membership_add(room=room, user=creator, role=Membership.Role.OWNER)
    return room


@transaction.atomic
def room_update(*, room: Room, name: str | None = None, topic: str | None = None, is_private: bool | None = None) -> Room:
    """Change what is given; unchanged values save nothing and send no `room:updated`."""
    changes = {k: v for k, v in {"name": name, "topic": topic, "is_private": is_private}.items() if v is not None}
    model_update(instance=room, data=changes)
    return room


def room_delete(*, room: Room) -> None:
    room.delete()  # locks the row first (HoldsItsRows)


@transaction.atomic
def membership_add(*, room: Room, user: User, role: str = Membership.Role.MEMBER) -> tuple[Membership, bool]:
    """Add `user` to `room`; adding an existing member changes nothing. Returns (membership, created)."""
    user.hold()  # the user, then the room: the order a user's delete locks them in (HoldsItsRows)
    room.hold()
    existing = Membership.objects.filter(room=room, user=user).first()
    if existing:
        return existing, False
    membership = Membership(room=room, user=user, role=role)
    membership.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            membership.save()
    except IntegrityError:  # a concurrent request added the same member first
        return Membership.objects.get(room=room, user=user), False
    return membership, True


@transaction.atomic
def membership_remove(*, membership: Membership, reason: str) -> None:
    membership.removal_reason = reason  # the receiver announces it; admin and ORM deletes say "removed"
    membership.delete()


@transaction.atomic
def conversation_get_or_create(*, user: User, other: User) -> tuple[Conversation, bool]:
    """The one conversation between two distinct users, created on first use."""
    low, high = sorted([user.pk, other.pk])
    existing = Conversation.objects.filter(user_low_id=low, user_high_id=high).first()
    if existing:
        return existing, False
    conversation = Conversation(user_low_id=low, user_high_id=high)
    conversation.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            conversation.save()
    except IntegrityError:  # created concurrently by the other participant
        return Conversation.objects.get(user_low_id=low, user_high_id=high), False
    return conversation, True


@transaction.atomic
def message_create(
    *, author: User, content: str, room: Room | None = None, conversation: Conversation | None = None
) -> Message:
    if (room is None) == (conversation is None):
        raise ValueError("A message belongs to exactly one room or one conversation.")
    author.hold()  # the author, then the room or conversation, against a concurrent delete (HoldsItsRows)
    (room or cast(Conversation, conversation)).hold()
    message = Message(author=author, content=content, room=room, conversation=conversation)
    # The content's rules only: the author, room and conversation are rows the caller has just
    # loaded, and the room-or-conversation rule is checked above (and by the database); the full
    # check would spend three queries per message proving it again (bench/notes.md).
    message.full_clean(exclude=["author", "room", "conversation"], validate_constraints=False)
    message.save()
    return message


@transaction.atomic
def message_update(*, message: Message, content: str) -> Message:
    """Change the content; the same content (after trimming) changes nothing and sends no event."""
    model_update(instance=message, data={"content": content})  # Message.save sets edited_at
    return message


@transaction.atomic
def message_delete(*, message: Message) -> None:
    message.delete()
