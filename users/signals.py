"""Turn committed changes of users and API keys into events and control messages.

- a change to the public profile → `user:updated`;
- a user deactivated or deleted, an API key revoked or deleted → every socket authenticated by
  it is told UNAUTHORIZED and closed with 4001, on every server process (realtime/hub.py).
"""
from typing import Any

from django.db.models.signals import post_delete, post_save, pre_delete

from realtime import channel_names, events
from realtime.control import ChannelDeleted, RevokeKey, RevokeUser
from realtime.publish import control_on_commit, publish_on_commit, reserve_control
from rooms.models import Membership
from users.models import ApiKey, User


def user_saved(sender: type, instance: User, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    changed = instance.changed(*User.PROFILE_FIELDS)
    deactivated = instance.was_deactivated()
    if raw or created:
        return
    if deactivated:
        control_on_commit(RevokeUser(instance.pk), using=using)
    if changed:
        # On the user's channel and on every room they are in, for the room's `activity` subscribers.
        # Rooms in id order: every writer takes stream locks in one order (no deadlocks).
        room_ids = Membership.objects.using(using).filter(user=instance).order_by("room_id").values_list("room_id", flat=True)
        for event in events.user_updated(instance, room_ids=room_ids):
            publish_on_commit(event, using=using)


def user_deleting(sender: type, instance: User, using: str | None = None, **kwargs: Any) -> None:
    # The cascade (memberships of public rooms) logs events before user_deleted logs its control
    # messages: take the control stream first, as every other change does (realtime/publish.py).
    reserve_control(using=using)


def user_deleted(sender: type, instance: User, using: str | None = None, **kwargs: Any) -> None:
    control_on_commit(RevokeUser(instance.pk), using=using)
    control_on_commit(ChannelDeleted(str(channel_names.user(instance.pk))), using=using)


def api_key_saved(sender: type, instance: ApiKey, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    # Revoked, or given an expiry that has already passed (the admin can edit it): close its sockets.
    # A future expiry set after a socket connected is not applied to that socket (docs/decisions.md).
    if not raw and not instance.is_usable:
        control_on_commit(RevokeKey(instance.pk), using=using)


def api_key_deleted(sender: type, instance: ApiKey, using: str | None = None, **kwargs: Any) -> None:
    control_on_commit(RevokeKey(instance.pk), using=using)


def connect() -> None:
    post_save.connect(user_saved, sender=User, dispatch_uid="users.user_saved")
    pre_delete.connect(user_deleting, sender=User, dispatch_uid="users.user_deleting")
    post_delete.connect(user_deleted, sender=User, dispatch_uid="users.user_deleted")
    post_save.connect(api_key_saved, sender=ApiKey, dispatch_uid="users.api_key_saved")
    post_delete.connect(api_key_deleted, sender=ApiKey, dispatch_uid="users.api_key_deleted")
