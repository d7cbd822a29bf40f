"""Text validators shared by models whose content reaches clients."""
from django.core.exceptions import ValidationError


def validate_plain_text(value: str) -> None:
    """Reject NUL and lone surrogates: PostgreSQL cannot store the first, UTF-8 cannot encode the second."""
    if "\x00" in value:
        raise ValidationError("Null characters are not allowed.", code="null_characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValidationError("Surrogate characters are not allowed.", code="surrogate_characters")
