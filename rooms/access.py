"""Who may see and change what. REST views and the realtime layer both ask here.

Rule of thumb for callers: what a user may not *see* answers 404; what they may see but not
*change* answers 403.
"""
from typing import cast

from django.db.models import Q, QuerySet

from rooms.models import Conversation, Membership, Message, Room
from users.models import User


ROOM_ADMINS_ONLY = "Only the room's owner and admins can do this."


def membership_of(user: User, room: Room) -> Membership | None:
    return Membership.objects.filter(room=room, user=user).first()


def visible_rooms(user: User) -> QuerySet[Room]:
    """Public rooms, private rooms the user belongs to, and every room for staff."""
    rooms = Room.objects.all()
    if user.is_staff:
        return rooms
    # A subquery rather than a join, so callers can still annotate counts over memberships.
    member_of = Membership.objects.filter(user=user).values("room_id")
    return rooms.filter(Q(is_private=False) | Q(pk__in=member_of))


def can_view_room(user: User, room: Room, membership: Membership | None = None) -> bool:
    if not room.is_private or user.is_staff:
        return True
    return (membership or membership_of(user, room)) is not None


def can_manage_room(user: User, room: Room, membership: Membership | None = None) -> bool:
    """Edit or delete the room, add or remove members: its owner and admins, and staff."""
    if user.is_staff:
        return True
    membership = membership or membership_of(user, room)
    return membership is not None and membership.can_manage_room


def membership_add_refusal(actor: User, room: Room, *, target: User, role: str) -> str | None:
    """Why `actor` may not add `target` to `room` with `role`, or None when they may: anyone may join
    a public room themselves as a member; otherwise the owner, admins and staff add people, and only
    the owner (or staff) adds admins."""
    if target == actor and role == Membership.Role.MEMBER and not room.is_private:
        return None
    membership = membership_of(actor, room)
    if not can_manage_room(actor, room, membership):
        return ROOM_ADMINS_ONLY
    # Not staff, so can_manage_room found the membership.
    if role == Membership.Role.ADMIN and not (actor.is_staff or cast(Membership, membership).role == Membership.Role.OWNER):
        return "Only the room's owner can add admins."
    return None


def membership_remove_refusal(actor: User, membership: Membership) -> str | None:
    """Why `actor` may not remove `membership`, or None: anyone may leave; the owner, admins and
    staff remove others; nobody but staff removes the owner."""
    if membership.user_id == actor.pk:
        return None
    if not can_manage_room(actor, membership.room):
        return ROOM_ADMINS_ONLY
    if membership.role == Membership.Role.OWNER and not actor.is_staff:
        return "The room's owner cannot be removed."
    return None


def can_post_in_room(user: User, room: Room, membership: Membership | None = None) -> bool:
    return (membership or membership_of(user, room)) is not None


def user_conversations(user: User) -> QuerySet[Conversation]:
    return Conversation.objects.filter(Q(user_low=user) | Q(user_high=user))


def is_participant(user: User, conversation: Conversation) -> bool:
    return user.pk in conversation.participant_ids


def can_view_message(user: User, message: Message) -> bool:
    # A message is in exactly one room or one conversation (a database constraint).
    if message.conversation_id:
        return is_participant(user, cast(Conversation, message.conversation))
    return can_view_room(user, cast(Room, message.room))


def can_edit_message(user: User, message: Message) -> bool:
    return message.author_id == user.pk


def can_delete_message(user: User, message: Message) -> bool:
    """The author, staff, and for room messages the room's owner and admins."""
    if message.author_id == user.pk or user.is_staff:
        return True
    return message.room_id is not None and can_manage_room(user, cast(Room, message.room))
