"""Cursor pagination, newest first, for every list (SPEC §2).

Ordering by the primary key, which only grows, makes pages stable while new rows arrive: a cursor
names a position, so nothing is shown twice and nothing is skipped.
"""
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

MAX_LIMIT = 100


class NewestFirstCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            raise serializers.ValidationError({"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]})
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise serializers.ValidationError({"cursor": ["Invalid cursor; use the next or previous link as given."]}) from None
