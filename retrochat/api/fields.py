"""Serializer fields for the public API: prefixed ids and strictly typed scalars.

DRF's CharField turns `123` into `"123"` and BooleanField accepts `"yes"`; the API answers a wrong
JSON type with a 400 instead, so a client bug shows up at once rather than as odd data.
"""
from typing import TYPE_CHECKING, Any, cast

from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.relations import PKOnlyObject

from retrochat import ids


class PrefixedIdField(serializers.Field):
    """Read-only: a primary key rendered as `room_7`. Its OpenAPI schema: retrochat/api/schema.py."""

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:
        pk = value.pk if isinstance(value, Model) else value
        return None if pk is None else ids.format_id(self.prefix, pk)


class PrefixedRelatedField(serializers.RelatedField):
    """A reference to another object by public id (`user_12` or 12) in request bodies."""

    default_error_messages = {
        "malformed": "Not a valid {kind} id; expected '{example}' or a positive integer.",
        "does_not_exist": "No {kind} with id '{value}'.",
    }

    def __init__(self, prefix: str, kind: str, **kwargs: Any) -> None:
        self.prefix = prefix
        self.kind = kind
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # DRF's related fields read "" as null ("may not be null"); here it is a malformed id.
        if data == "":
            self.fail("malformed", kind=self.kind, example=ids.format_id(self.prefix, 12))
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> Model:
        pk = ids.parse_id(self.prefix, data)
        if pk is None:
            self.fail("malformed", kind=self.kind, example=ids.format_id(self.prefix, 12))
        queryset = cast(QuerySet, self.get_queryset())  # not None: DRF requires one of a writable related field
        try:
            return queryset.get(pk=pk)
        except queryset.model.DoesNotExist:
            self.fail("does_not_exist", kind=self.kind, value=ids.format_id(self.prefix, pk))

    def to_representation(self, value: Model | PKOnlyObject) -> str:
        return ids.format_id(self.prefix, value.pk)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictURLField(serializers.URLField):
    default_error_messages = {"invalid_type": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid_type")
        return super().to_internal_value(data)


if TYPE_CHECKING:
    _SerializerBase = serializers.Serializer  # what the mixin is mixed into
else:
    _SerializerBase = object


class RejectUnknownFieldsMixin(_SerializerBase):
    """Answer 400 for a body key the endpoint does not accept, instead of silently ignoring it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)
