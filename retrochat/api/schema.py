"""The OpenAPI document (/v1/schema) as the server answers, field for field.

- Prefixed ids are documented with their own prefix (`user_7`, `msg_7`, …) and pattern.
- Every operation lists the errors it can answer, each with the one error body, from what the view
  is: authenticated (401), a write (403 for permission or CSRF, 429 throttled), with a JSON body
  (400, 413, 415), with path parameters (404), a list taking query parameters (400), and 503 when the
  database is down. tests/openapi.py checks every response of the REST tests against the document.
"""
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from retrochat import ids
from retrochat.api.query import StrictQueryParamsMixin

_WRITES = ("POST", "PUT", "PATCH", "DELETE")
_WITH_BODY = ("POST", "PUT", "PATCH")
# How a REST client may write an id: the prefixed form or the bare number.
_ID_EXAMPLE = 7


def id_schema(prefix: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": rf"^{prefix}_[1-9][0-9]*$",
        "example": ids.format_id(prefix, _ID_EXAMPLE),
    }


class PrefixedIdFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "retrochat.api.fields.PrefixedIdField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return id_schema(self.target.prefix)


class PrefixedRelatedFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "retrochat.api.fields.PrefixedRelatedField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        prefix = self.target.prefix
        return {
            "type": "string",
            "example": ids.format_id(prefix, _ID_EXAMPLE),
            "description": f"A {self.target.kind} id: `{ids.format_id(prefix, _ID_EXAMPLE)}` or `{_ID_EXAMPLE}`.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable `code`, a human-readable `message`, and `details` for some codes."""

    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `NOT_FOUND`.")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(
        required=False,
        help_text="VALIDATION_ERROR: field or query parameter → list of messages; RATE_LIMITED: "
        "`retry_after` (seconds); SERVICE_UNAVAILABLE from /v1/health and /v1/health/ready: `checks`.",
    )


_ERRORS: dict[int, str] = {
    400: "`VALIDATION_ERROR` (`details` names each field or query parameter) or `INVALID_JSON`.",
    401: "`UNAUTHORIZED`: missing, malformed, unknown, expired or revoked key, or a deactivated user.",
    403: "`FORBIDDEN`: you may see this but not do this (or, with session auth, the CSRF token is missing).",
    404: "`NOT_FOUND`: it does not exist, or you may not see it.",
    413: "`PAYLOAD_TOO_LARGE`: the body is over the server's upload limit.",
    415: "`UNSUPPORTED_MEDIA_TYPE`: the body must be JSON (`Content-Type: application/json`).",
    429: "`RATE_LIMITED`: too many writes; retry after `Retry-After` seconds.",
    503: "`SERVICE_UNAVAILABLE`: a dependency (the database) does not answer, or (readiness) the process is shutting down; retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}


class RetroChatAutoSchema(AutoSchema):
    def error_statuses(self) -> list[int]:
        view, method = self.view, self.method
        authenticated = not any(isinstance(permission, AllowAny) for permission in view.get_permissions())
        statuses = {503}
        if method in _WITH_BODY or (method == "GET" and isinstance(view, StrictQueryParamsMixin)):
            statuses.add(400)
        if authenticated:
            statuses.add(401)
            if method in _WRITES:
                statuses.add(403)
        if "{" in self.path:
            statuses.add(404)
        if method in _WITH_BODY:
            statuses.update((413, 415))
        if method in _WRITES and view.get_throttles():
            statuses.add(429)
        return sorted(statuses)

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        for status in self.error_statuses():
            response = OpenApiResponse(ErrorSerializer, description=_ERRORS[status])
            body = bodies.setdefault(str(status), self._get_response_for_code(response, str(status), direction=direction))
            if status in (429, 503):
                body["headers"] = _RETRY_AFTER
        return bodies
