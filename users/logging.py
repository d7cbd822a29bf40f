"""Log formatting that never writes an API key, whatever a message or traceback contains."""
import logging
import re

_KEY_RE = re.compile(r"rc_[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    return _KEY_RE.sub("rc_[redacted]", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
