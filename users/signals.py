"""Turn committed changes of users into events: `user:updated` when the public profile changes."""
from typing import Any

from django.db.models.signals import post_save

from realtime import events
from realtime.publish import publish_on_commit
from users.models import User


def user_saved(sender: type, instance: User, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    changed = instance.profile_changed_since_load()
    # From now on, compare with what was just saved: a second save() of the same change is not news.
    instance._loaded_profile = instance.profile_snapshot()
    if raw or created or not changed:
        return
    publish_on_commit(events.user_updated(instance), using=using)


def connect() -> None:
    post_save.connect(user_saved, sender=User, dispatch_uid="users.user_saved")
