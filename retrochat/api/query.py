"""Query parameters of list endpoints: one an endpoint does not know answers 400, never ignored.

A misspelt `?afer=msg_5` silently ignored would hand a client the newest page instead of its
catch-up, and it would not notice.
"""
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.settings import api_settings

from retrochat.api.pagination import NewestFirstCursorPagination

UNKNOWN_QUERY_PARAMETER = "Unknown query parameter."
# Every list takes these: its page size and position, and DRF's `?format=` (the browsable API's links use it).
_COMMON = frozenset(
    {
        NewestFirstCursorPagination.cursor_query_param,
        NewestFirstCursorPagination.page_size_query_param,
        api_settings.URL_FORMAT_OVERRIDE,
    }
)


class StrictQueryParamsMixin:
    """For list views: a GET with a query parameter outside `_COMMON` and `query_params` is a 400
    VALIDATION_ERROR naming it, checked after authentication (so 401 still comes first)."""

    query_params: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if request.method != "GET":
            return
        unknown = sorted(set(request.query_params) - _COMMON - set(self.query_params))
        if unknown:
            raise serializers.ValidationError({name: [UNKNOWN_QUERY_PARAMETER] for name in unknown})
