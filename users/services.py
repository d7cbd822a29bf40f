"""Every write to users and API keys."""
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from retrochat.tracking import model_update
from users import keys
from users.models import ApiKey, User


@transaction.atomic
def user_create(*, username: str, display_name: str = "", **extra: object) -> User:
    user = User(username=username, display_name=display_name, **extra)
    user.set_unusable_password()
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_update_profile(*, user: User, display_name: str | None = None, avatar_url: str | None = None) -> User:
    changes = {k: v for k, v in {"display_name": display_name, "avatar_url": avatar_url}.items() if v is not None}
    model_update(instance=user, data=changes, exclude_from_clean=["password"])
    return user


@transaction.atomic
def api_key_create(*, user: User, name: str, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is not stored and cannot be shown again."""
    new = keys.generate()
    api_key = ApiKey(user=user, name=name, expires_at=expires_at, prefix=new.prefix, hashed_key=new.hashed_key)
    api_key.full_clean()
    api_key.save()
    return api_key, new.secret


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
