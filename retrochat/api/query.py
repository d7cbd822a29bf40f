"""Query parameters of list endpoints: one an endpoint does not know answers 400, never ignored.

A misspelt `?afer=msg_5` silently ignored would hand a client the newest page instead of its
catch-up, and it would not notice.
"""
from typing import TYPE_CHECKING, Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

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


if TYPE_CHECKING:
    _ViewBase = APIView  # what the mixin is mixed into
else:
    _ViewBase = object


class StrictQueryParamsMixin(_ViewBase):
    """For list views: a GET with a query parameter outside `_COMMON` and `query_params` is a 400
    VALIDATION_ERROR naming it, checked after authentication (so 401 still comes first)."""

    query_params: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method != "GET":
            return
        unknown = sorted(set(request.query_params) - _COMMON - set(self.query_params))
        if unknown:
            raise serializers.ValidationError({name: [UNKNOWN_QUERY_PARAMETER] for name in unknown})
