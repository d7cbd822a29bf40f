"""Frames checked against docs/asyncapi.yaml: every frame a live test sends or receives.

The document is loaded once. A frame is matched to its message by `type` within its direction
(client frames are what the server receives, server frames what it sends) and validated against
that message's payload schema, $refs resolved within the document. A frame whose `type` the
document does not list fails.
"""
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
BASE_URI = "urn:retrochat:asyncapi"
CLIENT, SERVER = "receive", "send"  # the server's operations: it receives client frames, sends server frames


@cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())


def _resolve(pointer: str) -> Any:
    node: Any = document()
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@cache
def _registry() -> Registry:
    return Registry().with_resource(BASE_URI, Resource.from_contents(document(), default_specification=DRAFT7))


@cache
def validators(direction: str) -> dict[str, jsonschema.Draft7Validator]:
    """`type` → a validator of that frame's payload, for one direction."""
    found: dict[str, jsonschema.Draft7Validator] = {}
    for operation in document()["operations"].values():
        if operation["action"] != direction:
            continue
        for message_ref in operation["messages"]:
            message = _resolve(message_ref["$ref"])
            if "$ref" in message:
                message = _resolve(message["$ref"])
            payload_ref = message["payload"]["$ref"]
            frame_type = _resolve(payload_ref)["properties"]["type"]["const"]
            found[frame_type] = jsonschema.Draft7Validator(
                {"$ref": BASE_URI + payload_ref}, registry=_registry(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
            )
    return found


def check_frame(frame: Any, direction: str) -> None:
    """Raise AssertionError unless `frame` is a frame of `direction` that the document describes."""
    kind = "client" if direction == CLIENT else "server"
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise AssertionError(f"{kind} frame without a string `type`: {frame!r}")
    validator = validators(direction).get(frame["type"])
    if validator is None:
        raise AssertionError(f"{kind} frame of a type docs/asyncapi.yaml does not describe: {frame!r}")
    errors = sorted(validator.iter_errors(frame), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}" for e in errors)
        raise AssertionError(f"{kind} frame does not match docs/asyncapi.yaml: {details}\n{frame!r}")


def check_client_frame(frame: Any) -> None:
    check_frame(frame, CLIENT)


def check_server_frame(frame: Any) -> None:
    check_frame(frame, SERVER)
