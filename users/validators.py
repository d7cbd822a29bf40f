"""Text validators shared by models whose content reaches clients.

Names and messages are shown to other people, so they may not be made of nothing visible, carry
terminal or other control characters, or reorder the text around them with bidi overrides
(`see \u202etxt.exe` displays as `see exe.txt`). Bidi *marks* (U+200E, U+200F, U+061C) stay
allowed: right-to-left text needs them and they cannot reorder what follows them.
"""
import unicodedata

from django.core.exceptions import ValidationError

# Embeddings, overrides and their terminator (U+202A–U+202E); isolates (U+2066–U+2069).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that render as blank space: Hangul fillers, the braille blank, and
# default-ignorable marks (grapheme joiner, Khmer inherent vowels, variation selectors).
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # controls, format characters, separators


def validate_plain_text(value: str) -> None:
    """Reject NUL and lone surrogates: PostgreSQL cannot store the first, UTF-8 cannot encode the second."""
    if "\x00" in value:
        raise ValidationError("Null characters are not allowed.", code="null_characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValidationError("Surrogate characters are not allowed.", code="surrogate_characters")


def _is_control(char: str) -> bool:
    # NUL has its own message (validate_plain_text), so it is not reported twice.
    return char != "\x00" and unicodedata.category(char) == "Cc"  # C0, DEL and C1


def validate_no_control_characters(value: str) -> None:
    """Multi-line text (message content, topics): line breaks and tabs are text; other controls are not."""
    if any(_is_control(char) and char not in "\n\t" for char in value):
        raise ValidationError("Control characters are not allowed.", code="control_characters")


def validate_single_line(value: str) -> None:
    """Names: no control character at all, line breaks and tabs included."""
    if any(_is_control(char) for char in value):
        raise ValidationError("Line breaks and control characters are not allowed.", code="control_characters")


def validate_no_bidi_controls(value: str) -> None:
    if any(char in _BIDI_CONTROLS for char in value):
        raise ValidationError(
            "Bidirectional override and isolate characters are not allowed.", code="bidi_controls"
        )


def _is_invisible(char: str) -> bool:
    return (
        char in _BLANK_GLYPHS
        or unicodedata.category(char) in _INVISIBLE_CATEGORIES
        or "\ufe00" <= char <= "\ufe0f"
        or "\U000e0100" <= char <= "\U000e01ef"
    )


def validate_visible(value: str) -> None:
    """Not blank once invisible characters (zero-width, fillers, format characters) are removed."""
    if value and all(_is_invisible(char) for char in value):
        raise ValidationError("This field may not be blank.", code="invisible_only")


# A name (room, display name) is one line of visible text; multi-line text (topic, message
# content) may break lines. Message content must also be visible; a topic may be left empty.
NAME_VALIDATORS = [validate_plain_text, validate_single_line, validate_no_bidi_controls, validate_visible]
MULTILINE_VALIDATORS = [validate_plain_text, validate_no_control_characters, validate_no_bidi_controls]
