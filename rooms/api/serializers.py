from typing import Any, cast

from rest_framework import serializers

from retrochat import ids
from retrochat.timestamps import format_timestamp
from rooms import access
from retrochat.api.fields import (
    PrefixedIdField,
    PrefixedRelatedField,
    RejectUnknownFieldsMixin,
    StrictBooleanField,
    StrictCharField,
)
from rooms.models import MAX_MESSAGE_LENGTH, Conversation, Membership, Message, Room
from users.api.serializers import UserSerializer
from users.models import User


class RoomSharedSerializer(serializers.ModelSerializer):
    """The room as every viewer sees it: the data of `room:updated`, one frame for all subscribers."""

    id = PrefixedIdField(ids.ROOM, source="pk")
    created_by = PrefixedIdField(ids.USER, source="created_by_id", allow_null=True)
    member_count = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = ["id", "name", "topic", "is_private", "created_by", "created_at", "updated_at", "member_count"]
        read_only_fields = fields

    def get_member_count(self, room: Room) -> int:
        annotated = getattr(room, "member_count", None)
        return annotated if annotated is not None else room.memberships.count()


class RoomSerializer(RoomSharedSerializer):
    """The room as REST answers it, with `is_member` for the requesting user (context `viewer`)."""

    is_member = serializers.SerializerMethodField(help_text="Whether you are a member of the room.")

    class Meta(RoomSharedSerializer.Meta):
        fields = [*RoomSharedSerializer.Meta.fields, "is_member"]
        read_only_fields = fields

    def get_is_member(self, room: Room) -> bool:
        # REST views annotate it per request (rooms/api/views.py); otherwise ask the database.
        annotated = getattr(room, "viewer_is_member", None)
        if annotated is not None:
            return annotated
        return access.membership_of(self.context["viewer"], room) is not None


class RoomCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=100)
    topic = StrictCharField(max_length=500, required=False, allow_blank=True)
    is_private = StrictBooleanField(required=False)


class RoomUpdateSerializer(RoomCreateSerializer):
    name = StrictCharField(max_length=100, required=False)


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer()
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["user", "role", "joined_at"]
        read_only_fields = fields


class MembershipCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    user_id = PrefixedRelatedField(
        ids.USER, "user", queryset=User.objects.filter(is_active=True), required=False,
        help_text="Whom to add; omit it to join yourself.",
    )
    role = serializers.ChoiceField(
        choices=[Membership.Role.MEMBER, Membership.Role.ADMIN], required=False,
        help_text="Only the owner (or staff) may add an admin.",
    )


class ConversationSerializer(serializers.ModelSerializer):
    id = PrefixedIdField(ids.CONVERSATION, source="pk")
    participants = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = ["id", "participants", "created_at"]
        read_only_fields = fields

    def get_participants(self, conversation: Conversation) -> list[str]:
        return [ids.format_id(ids.USER, pk) for pk in conversation.participant_ids]


class ConversationCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    user_id = PrefixedRelatedField(ids.USER, "user", queryset=User.objects.filter(is_active=True))


def message_identity(message: Message) -> dict[str, Any]:
    """What names a message in every payload: `id`, `room_id` or `conversation_id`, and `user_id`."""
    data: dict[str, Any] = {"id": ids.format_id(ids.MESSAGE, message.pk)}
    if message.room_id is not None:
        data["room_id"] = ids.format_id(ids.ROOM, message.room_id)
    else:
        data["conversation_id"] = ids.format_id(ids.CONVERSATION, cast(int, message.conversation_id))
    data["user_id"] = ids.format_id(ids.USER, message.author_id)
    return data


class MessageSerializer(serializers.ModelSerializer):
    """A message. It carries `room_id` (in a room) or `conversation_id` (in a direct conversation), never both."""

    id = PrefixedIdField(ids.MESSAGE, source="pk")
    room_id = PrefixedIdField(ids.ROOM, required=False)
    conversation_id = PrefixedIdField(ids.CONVERSATION, required=False)
    user_id = PrefixedIdField(ids.USER, source="author_id")

    class Meta:
        model = Message
        fields = ["id", "room_id", "conversation_id", "user_id", "content", "created_at", "updated_at", "edited_at"]
        read_only_fields = fields

    def to_representation(self, message: Message) -> dict[str, Any]:
        # Built directly: every message is rendered twice on the write path (the REST answer and
        # its event's data), and DRF's generic path copies every declared field per serializer
        # (≈ 9 % of a REST write, bench/notes.md). The fields above remain the schema;
        # tests/test_api_messages.py holds this equal to the generic rendering.
        data = message_identity(message)
        data["content"] = message.content
        data["created_at"] = format_timestamp(message.created_at)
        data["updated_at"] = format_timestamp(message.updated_at)
        data["edited_at"] = None if message.edited_at is None else format_timestamp(message.edited_at)
        return data

    def generic_representation(self, message: Message) -> dict[str, Any]:
        """DRF's rendering from the declared fields: what `to_representation` must equal."""
        data = super().to_representation(message)
        data.pop("conversation_id" if message.room_id is not None else "room_id")
        return data


class MessageWriteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    content = StrictCharField(
        max_length=MAX_MESSAGE_LENGTH,
        help_text="Plain text, 1–4000 characters after trimming, not only invisible characters; "
        "line breaks and tabs allowed, other control characters and bidi overrides/isolates not.",
    )
