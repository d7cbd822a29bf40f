"""Turn committed changes of rooms, memberships and messages into events.

Receivers only map a row to its event(s) and hand them to `publish_on_commit`. They run for every
write path alike: services, the admin and plain ORM code.

Cascades: deleting a room (or conversation) deletes its messages and memberships first. The
`origin` of those deletes is the room, and then only `room:deleted` is sent: on the room's channel
and on each member's own feed, never one `message:deleted` per message.
"""
from typing import Any

from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete, post_save, pre_delete
from django.utils import timezone

from realtime import channel_names, events, presence
from realtime.control import AccessChanged, ChannelDeleted
from realtime.publish import control_on_commit, presence_on_commit, publish_on_commit, reserve_control
from rooms.models import Conversation, Membership, Message, Room
from rooms.models import RemovalReason


def _deleted_through(origin: Any, model: type[Model]) -> bool:
    """Whether a cascade delete started at an instance or queryset of `model`."""
    if isinstance(origin, QuerySet):
        return origin.model is model
    return isinstance(origin, model)


def message_saved(sender: type, instance: Message, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    if raw:  # loaddata: fixtures are not live changes
        return
    publish_on_commit(events.message_saved(instance, created=created), using=using)


def message_deleted(sender: type, instance: Message, using: str | None = None, origin: Any = None, **kwargs: Any) -> None:
    if _deleted_through(origin, Room) or _deleted_through(origin, Conversation):
        return
    publish_on_commit(events.message_deleted(instance, deleted_at=timezone.now()), using=using)


def room_saved(sender: type, instance: Room, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    became_private = instance.became_private()
    # A new room is announced by its first membership (room:created on the owner's feed).
    if raw or created:
        return
    # Access changes go first: the hubs then hold the room's events until each watcher's access is
    # re-checked, so that non-members get none of them (not even this room:updated).
    if became_private:  # non-members watching it lose access
        control_on_commit(AccessChanged(str(channel_names.room(instance.pk))), using=using)
    publish_on_commit(events.room_updated(instance), using=using)


def room_deleting(sender: type, instance: Room, using: str | None = None, **kwargs: Any) -> None:
    # The cascade logs room:deleted on members' feeds before room_deleted logs its control message:
    # take the control stream first, as every other change does (realtime/publish.py reserve_control).
    reserve_control(using=using)


def room_deleted(sender: type, instance: Room, using: str | None = None, **kwargs: Any) -> None:
    publish_on_commit(events.room_deleted(instance.pk, reason=RemovalReason.DELETED), using=using)
    control_on_commit(ChannelDeleted(str(channel_names.room(instance.pk))), using=using)


def conversation_saved(sender: type, instance: Conversation, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    if raw or not created:  # a conversation has nothing to change after it began
        return
    for user_id in instance.participant_ids:
        publish_on_commit(events.conversation_created(instance, user_id=user_id), using=using)


def conversation_deleted(sender: type, instance: Conversation, using: str | None = None, **kwargs: Any) -> None:
    control_on_commit(ChannelDeleted(str(channel_names.conversation(instance.pk))), using=using)


def membership_saved(sender: type, instance: Membership, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    if raw or not created:  # a role change is not visible in the room's public shape
        return
    publish_on_commit(events.room_joined(instance.room, user_id=instance.user_id), using=using)
    publish_on_commit(events.room_updated(instance.room), using=using)
    _announce_presence_in_room(instance, presence.ONLINE, using)


def _announce_presence_in_room(membership: Membership, status: str, using: str | None) -> None:
    """An online member entering (or leaving) a room enters (or leaves) its set of online members."""
    if presence.status_of(membership.user_id) == presence.ONLINE:
        event = events.user_presence(membership.user_id, status=status, at=timezone.now(), room_id=membership.room_id)
        presence_on_commit(event, using=using)


def membership_deleted(sender: type, instance: Membership, using: str | None = None, origin: Any = None, **kwargs: Any) -> None:
    if _deleted_through(origin, Room):
        publish_on_commit(
            events.room_left(instance.room_id, user_id=instance.user_id, reason=RemovalReason.DELETED), using=using
        )
        return
    reason = instance.removal_reason
    if instance.room.is_private:  # a former member may no longer watch it; first, as in room_saved
        control_on_commit(AccessChanged(str(channel_names.room(instance.room_id)), instance.user_id), using=using)
    publish_on_commit(events.room_left(instance.room_id, user_id=instance.user_id, reason=reason), using=using)
    publish_on_commit(events.room_updated(instance.room), using=using)
    _announce_presence_in_room(instance, presence.OFFLINE, using)


def connect() -> None:
    post_save.connect(message_saved, sender=Message, dispatch_uid="rooms.message_saved")
    post_delete.connect(message_deleted, sender=Message, dispatch_uid="rooms.message_deleted")
    post_save.connect(room_saved, sender=Room, dispatch_uid="rooms.room_saved")
    pre_delete.connect(room_deleting, sender=Room, dispatch_uid="rooms.room_deleting")
    post_delete.connect(room_deleted, sender=Room, dispatch_uid="rooms.room_deleted")
    post_save.connect(conversation_saved, sender=Conversation, dispatch_uid="rooms.conversation_saved")
    post_delete.connect(conversation_deleted, sender=Conversation, dispatch_uid="rooms.conversation_deleted")
    post_save.connect(membership_saved, sender=Membership, dispatch_uid="rooms.membership_saved")
    post_delete.connect(membership_deleted, sender=Membership, dispatch_uid="rooms.membership_deleted")
