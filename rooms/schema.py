"""OpenAPI description of the message shape, for /v1/schema and /v1/docs."""
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema

# A message carries exactly one of these; the other key is absent (not null).
_WHERE = ("room_id", "conversation_id")


class MessageSchema(OpenApiSerializerExtension):
    target_class = "rooms.api.serializers.MessageSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        # drf-spectacular marks every read-only field required; a generated client would then
        # fail on each message for the key it does not carry.
        schema["required"] = [name for name in schema["required"] if name not in _WHERE]
        for name in _WHERE:
            schema["properties"][name]["description"] = "Present on messages in a room." if name == "room_id" else "Present on messages in a direct conversation."
        return schema
