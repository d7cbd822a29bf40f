from typing import Any, cast

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
    # Not the model's URLField: its schema says `format: uri`, and "" (no avatar) is no URI.
    avatar_url = serializers.CharField(read_only=True, help_text="An http(s) URL, or an empty string when none is set.")
    status = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "status", "last_seen_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=[presence.ONLINE, presence.OFFLINE]))
    def get_status(self, user: User) -> str:
        return presence.status_of(user.pk)


MAX_LOOKUP_IDS = 100


class UserLookupQuerySerializer(serializers.Serializer):
    """`GET /v1/users`: exactly one of `ids` and `search`."""

    ids = serializers.CharField(
        required=False,
        help_text=f"Comma-separated user ids (`user_1,user_2` or `1,2`), at most {MAX_LOOKUP_IDS}: those users, "
        "in the order given; unknown ids are left out. One page: `limit` and `cursor` do not apply.",
    )
    search = serializers.CharField(
        required=False, max_length=100,
        help_text="Users whose username or display name contains this text, ignoring case; paginated.",
    )

    def validate_ids(self, raw: str) -> list[int]:
        parts = [part.strip() for part in raw.split(",")]
        malformed = [part for part in parts if ids.parse_id(ids.USER, part) is None]
        if malformed:
            raise serializers.ValidationError(
                f"Not valid user ids: {', '.join(repr(part) for part in malformed)}; expected 'user_12' or 12, comma-separated."
            )
        # Without repeats, in order; none is None (no part is malformed).
        pks = list(dict.fromkeys(cast(int, ids.parse_id(ids.USER, part)) for part in parts))
        if len(pks) > MAX_LOOKUP_IDS:
            raise serializers.ValidationError(f"At most {MAX_LOOKUP_IDS} ids.")
        return pks

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("ids" in data) == ("search" in data):
            raise serializers.ValidationError("Give either ids or search (exactly one).")
        return data


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
