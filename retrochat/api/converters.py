"""URL converters: `/v1/rooms/7` and `/v1/rooms/room_7` name the same room."""
from django.urls import register_converter

from retrochat import ids


class _PrefixedIdConverter:
    prefix: str

    def __init__(self) -> None:
        self.regex = ids.path_regex(self.prefix)

    def to_python(self, value: str) -> int:
        pk = ids.parse_id(self.prefix, value)
        if pk is None:  # the regex already guarantees a match; this keeps the contract explicit
            raise ValueError(value)
        return pk

    def to_url(self, value: int) -> str:
        return str(value)


def _converter(prefix: str) -> type:
    return type(f"{prefix.title()}IdConverter", (_PrefixedIdConverter,), {"prefix": prefix})


def register() -> None:
    for name, prefix in [
        ("user_id", ids.USER),
        ("room_id", ids.ROOM),
        ("conv_id", ids.CONVERSATION),
        ("msg_id", ids.MESSAGE),
        ("key_id", ids.API_KEY),
    ]:
        register_converter(_converter(prefix), name)
