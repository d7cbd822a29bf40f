"""Every REST response of the test suite checked against the OpenAPI document (/v1/schema).

`SchemaCheckedClient` (the `api`, `client_for` and `anon` fixtures) validates each answer to a
documented operation: its status must be documented for that path and method, and its JSON body
must match the documented schema exactly, with no undocumented field (objects are closed). So the
document cannot drift from what the server answers without a test failing.

Not checked: paths the document does not describe (unknown /v1/ paths, the admin, /metrics, the
schema itself) and methods an endpoint does not have (405), nor CORS preflights.
"""
import json
import re
from datetime import datetime
from functools import cache
from typing import Any

import jsonschema
from django.http import HttpResponse
from drf_spectacular.generators import SchemaGenerator
from referencing import Registry, Resource
from rest_framework.test import APIClient

_DOCUMENT_URI = "urn:retrochat:openapi"
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_utc_timestamp(value: object) -> bool:
    """The API writes every timestamp as ISO 8601 in UTC with a `Z`."""
    if not isinstance(value, str):
        return True
    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() is not None


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: `nullable` becomes a union with null, and every object
    that lists its properties admits no other key."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_json_schema(value) for key, value in node.items()}
    if converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _document() -> dict[str, Any]:
    return _to_json_schema(SchemaGenerator().get_schema(request=None, public=True))


@cache
def _registry() -> Registry:
    return Registry().with_resource(_DOCUMENT_URI, Resource.opaque(_document()))


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    """Documented paths as regexes, literal ones first (`/v1/users/me` before `/v1/users/{user_id}`)."""
    paths = sorted(_document()["paths"], key=lambda path: path.count("{"))
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path) for path in paths]


def _documented_path(path: str) -> str | None:
    return next((template for pattern, template in _path_patterns() if pattern.match(path)), None)


def check_response(method: str, path: str, response: HttpResponse) -> None:
    """Fail unless `response` is what the document says `method path` answers."""
    template = _documented_path(path)
    operation = _document()["paths"].get(template, {}).get(method.lower()) if template else None
    if operation is None:
        return
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (
        f"{method} {path} answered {response.status_code}, which the OpenAPI document does not list for "
        f"{method} {template} (it lists {sorted(operation['responses'])})"
    )
    content = documented.get("content")
    if content is None:
        assert not response.content, f"{method} {path} {response.status_code}: documented without a body, got {response.content[:200]!r}"
        return
    assert response["Content-Type"].startswith("application/json"), (
        f"{method} {path} {response.status_code}: documented as JSON, got {response['Content-Type']}"
    )
    schema = {"$ref": f"{_DOCUMENT_URI}#/paths/{_escape(template)}/{method.lower()}/responses/{response.status_code}/content/application~1json/schema"}
    validator = jsonschema.Draft202012Validator(schema, registry=_registry(), format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(json.loads(response.content)), key=lambda error: list(error.absolute_path))
    assert not errors, f"{method} {path} {response.status_code} does not match the OpenAPI document:\n" + "\n".join(
        f"  at {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}" for error in errors
    )


def _escape(pointer_part: str) -> str:
    return pointer_part.replace("~", "~0").replace("/", "~1")


class SchemaCheckedClient(APIClient):
    """An APIClient whose every response to a documented operation is checked by `check_response`."""

    def request(self, **kwargs: Any) -> HttpResponse:
        response = super().request(**kwargs)
        check_response(kwargs["REQUEST_METHOD"], kwargs["PATH_INFO"], response)
        return response
