from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from retrochat.rows import HoldsItsRows
from retrochat.tracking import TracksChanges
from users.validators import NAME_VALIDATORS, validate_plain_text


class User(AbstractUser, HoldsItsRows, TracksChanges):
    """A RetroChat user: a person or a bot, authenticated by API keys or a session."""

    display_name = models.CharField(max_length=100, blank=True, validators=NAME_VALIDATORS)
    avatar_url = models.URLField(max_length=500, blank=True)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the user's last realtime connection closed."
    )

    # The fields of the public profile: a change to any of them is a `user:updated` event.
    PROFILE_FIELDS = ("username", "display_name", "avatar_url")
    TRACKED_FIELDS = (*PROFILE_FIELDS, "is_active")

    def was_deactivated(self) -> bool:
        return not self.is_active and self.was("is_active") is True

    def lock_dependents(self) -> None:
        # The user's conversations go with them: a message being written into one (holding it)
        # commits first and is collected, or finds the conversation gone.
        from rooms.models import Conversation

        conversations = Conversation._base_manager.filter(models.Q(user_low=self) | models.Q(user_high=self))
        list(conversations.select_for_update().order_by("pk").values_list("pk", flat=True))

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and not self.display_name:
            self.display_name = self.username
        super().save(*args, **kwargs)


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> "ApiKeyQuerySet":
        """Keys that still authenticate: not revoked, not expired."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A bearer credential. Only a lookup prefix and a SHA-256 digest are stored (users/keys.py)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, validators=[validate_plain_text])
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    # Set on a key just created, for ApiKeyCreatedSerializer (users/api/views.py); never stored.
    secret: str

    class Meta:
        verbose_name = "API key"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired
