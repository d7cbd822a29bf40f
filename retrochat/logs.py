"""Log formatting: never an API key, whatever a message or traceback contains; JSON on request.

`LOG_FORMAT=json` writes one JSON object per line (`time`, `level`, `logger`, `message`, the
record's structured extras such as `method`, `path`, `status`, `duration_ms`, `user_id`, and
`exc` with the traceback), which log shippers read without parsing rules.
"""
import json
import logging
import re
import time
from typing import Any

_KEY_RE = re.compile(r"rc_[A-Za-z0-9_-]{8,}")

# Attributes every LogRecord has; anything else was passed as `extra=` and is structured data.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    return _KEY_RE.sub("rc_[redacted]", text)


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` safe for one log line: control, bidi and other non-printable characters become
    backslash escapes (`\\x0a`, `\\u202e`), and a backslash is doubled so that no escape is forged."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else _escape(char) for char in text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))
