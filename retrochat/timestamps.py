"""The one timestamp format of the API: ISO 8601 in UTC with a `Z`, as DRF renders it."""
from datetime import datetime

from rest_framework.fields import DateTimeField

_render = DateTimeField().to_representation


def format_timestamp(value: datetime) -> str:
    return _render(value)
