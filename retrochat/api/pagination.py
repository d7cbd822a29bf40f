"""Cursor pagination for every list: newest first, or oldest first for a catch-up (`?after=`).

Ordering by the primary key, which only grows, makes pages stable while new rows arrive: a cursor
names a position, so nothing is shown twice and nothing is skipped.
"""
import binascii
import re
from base64 import b64decode
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

MAX_LIMIT = 100
# A primary key as the cursor's position: ASCII digits that fit a signed 64-bit integer (retrochat/ids.py).
_POSITION_RE = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)


class NewestFirstCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT

    cursor_query_description = "Where a page starts: use the `next` or `previous` link as given."
    page_size_query_description = f"Results per page, 1 to {MAX_LIMIT} (default 50)."

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        document = super().get_paginated_response_schema(schema)
        document["required"] = ["results", "next", "previous"]  # always present; null at either end
        for link in ("next", "previous"):
            document["properties"][link]["example"] = f"https://chat.example.com/v1/rooms?{self.cursor_query_param}=cD0xMg%3D%3D"
        return document

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": MAX_LIMIT, "default": self.page_size})
        return parameters

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            raise serializers.ValidationError({"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]})
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = serializers.ValidationError({"cursor": ["Invalid cursor; use the next or previous link as given."]})
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            if encoded is not None:
                # DRF's decoding skips characters outside the base64 alphabet: "!!!" would read as page one.
                b64decode(encoded, validate=True)
            cursor = super().decode_cursor(request)
        except (NotFound, binascii.Error):
            raise invalid from None
        # The position is the last id shown; any other value would reach the database and fail there (a 500).
        # djangorestframework-stubs types Cursor.position as int; DRF decodes it from the query as a str.
        if cursor is not None and cursor.position is not None and not _POSITION_RE.fullmatch(cursor.position):  # type: ignore[call-overload]
            raise invalid
        return cursor


class OldestFirstCursorPagination(NewestFirstCursorPagination):
    """Message catch-up (`?after=<message id>`): ascending, so `next` continues towards the newest."""

    ordering = "id"
