"""The one request parser of the API: JSON, with limits that answer 4xx instead of failing."""
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json.load recurses once per nesting level: `[[[…]]]` a few thousand deep exhausts
            # the stack. It is the client's malformed input, not a bug of ours.
            raise ParseError("JSON parse error - nesting too deep.") from None
