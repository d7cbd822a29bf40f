from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from retrochat.rows import HoldsItsRows
from retrochat.tracking import TracksChanges
from users.validators import MULTILINE_VALIDATORS, NAME_VALIDATORS, validate_visible

MAX_MESSAGE_LENGTH = 4000


class Room(HoldsItsRows, TracksChanges):
    """A chat room. Public rooms are visible to every user; private ones to members and staff."""

    name = models.CharField(max_length=100, validators=NAME_VALIDATORS)
    topic = models.CharField(max_length=500, blank=True, validators=MULTILINE_VALIDATORS)
    is_private = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="rooms", blank=True
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name

    # Tracked so that making a room private re-checks who may still watch it.
    TRACKED_FIELDS = ("is_private",)

    def became_private(self) -> bool:
        # An unknown earlier state (a deferred field, an instance not loaded from the database)
        # counts as a change: re-checking watchers costs little, missing a change leaks the room.
        return bool(self.is_private) and self.was("is_private") is not True


class RemovalReason:
    """`reason` of the `room:deleted` event on a user's own feed."""

    DELETED = "deleted"  # the room itself was deleted
    LEFT = "left"  # the user left
    REMOVED = "removed"  # someone else removed the user


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Not a column: why this membership is being deleted, for the `room:deleted` event on the
    # member's own feed. `membership_remove` sets it; other deletes (admin, ORM) are removals.
    removal_reason: str = RemovalReason.REMOVED
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "user"],
                name="membership_unique_per_room_and_user",
                violation_error_message="This user is already a member of this room.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"

    @property
    def can_manage_room(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Conversation(HoldsItsRows):
    """A direct conversation between exactly two distinct users.

    The pair is stored in id order (`user_low.id < user_high.id`), so that a check constraint and
    a unique constraint together make the database hold at most one conversation per pair, whatever
    order the two users were given in.
    """

    user_low = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_high = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user_low__lt=F("user_high")),
                name="conversation_users_distinct_and_ordered",
                violation_error_message="A conversation needs two different users.",
            ),
            models.UniqueConstraint(
                fields=["user_low", "user_high"],
                name="conversation_unique_per_pair",
                violation_error_message="These two users already have a conversation.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_low} ↔ {self.user_high}"

    @property
    def participant_ids(self) -> tuple[int, int]:
        return (self.user_low_id, self.user_high_id)

    def order_participants(self) -> None:
        """Put the pair in the stored order; called by save() so any caller may pass either order."""
        if self.user_low_id and self.user_high_id and self.user_low_id > self.user_high_id:
            self.user_low_id, self.user_high_id = self.user_high_id, self.user_low_id

    def clean(self) -> None:
        self.order_participants()

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.order_participants()
        super().save(*args, **kwargs)


class Message(TracksChanges):
    """A message in exactly one room or one conversation (a database check constraint)."""

    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    content = models.TextField(max_length=MAX_MESSAGE_LENGTH, validators=[*MULTILINE_VALIDATORS, validate_visible])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    edited_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the content was last edited; null until its first edit."
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(room__isnull=False, conversation__isnull=True)
                    | Q(room__isnull=True, conversation__isnull=False)
                ),
                name="message_in_exactly_one_room_or_conversation",
                violation_error_message="A message belongs to exactly one room or one conversation.",
            )
        ]
        indexes = [
            models.Index(fields=["room", "-id"], name="message_room_history"),
            models.Index(fields=["conversation", "-id"], name="message_conversation_history"),
        ]

    def __str__(self) -> str:
        return f"{self.author}: {self.content[:40]}"

    TRACKED_FIELDS = ("content",)

    def content_edited(self, update_fields: Any = None) -> bool:
        """Whether this save changes the content of an existing message."""
        if self._state.adding or "content" not in self.__dict__:  # new, or content deferred (not saved)
            return False
        if update_fields is not None and "content" not in update_fields:
            return False
        # An instance not loaded from the database has no snapshot: its save overwrites the content.
        return self.changed("content")

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Here rather than in the service, so that edits through the admin and plain ORM code also
        # mark the message edited: `edited_at` is part of the REST body and of message:updated.
        update_fields = kwargs.get("update_fields")
        if self.content_edited(update_fields):
            self.edited_at = timezone.now()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "edited_at"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.content = self.content.strip()
        if not self.content:
            raise ValidationError({"content": "A message cannot be blank."})
        if (
            self.conversation_id
            and self.author_id
            and self.author_id not in cast(Conversation, self.conversation).participant_ids
        ):
            raise ValidationError({"author": "Only the two participants can write in a conversation."})
