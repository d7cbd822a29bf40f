from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from realtime import presence
from retrochat import ids
from retrochat.api.fields import (
    PrefixedIdField,
    RejectUnknownFieldsMixin,
    StrictCharField,
    StrictURLField,
)
from users.models import ApiKey, User


class UserSerializer(serializers.ModelSerializer):
    """The public profile with presence: `{"id", "username", "display_name", "avatar_url", "status", "last_seen_at"}`."""

    id = PrefixedIdField(ids.USER, source="pk")
    status = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "status", "last_seen_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=[presence.ONLINE, presence.OFFLINE]))
    def get_status(self, user: User) -> str:
        return presence.status_of(user.pk)


class UserUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    display_name = StrictCharField(max_length=100, required=False)
    avatar_url = StrictURLField(max_length=500, required=False, allow_blank=True)


class ApiKeySerializer(serializers.ModelSerializer):
    id = PrefixedIdField(ids.API_KEY, source="pk")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class ApiKeyCreatedSerializer(serializers.ModelSerializer):
    """The answer to creating a key: the only time `key` (the secret) is ever shown."""

    id = PrefixedIdField(ids.API_KEY, source="pk")
    key = serializers.CharField(source="secret")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "expires_at", "key"]
        read_only_fields = fields
