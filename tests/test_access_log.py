"""The access log (retrochat.access): one line per request, whatever the path contains.

A path is attacker-controlled: `%0A` would forge a second log line and `%1B[2J` would send a
terminal escape to whoever tails the log. Control and other non-printable characters are written
as backslash escapes (and a backslash as two), in the plain and the JSON format alike.
"""
import json
import logging

import pytest
from django.test import Client

from retrochat.logs import JsonFormatter, RedactingFormatter

pytestmark = pytest.mark.django_db

PLAIN = RedactingFormatter("%(levelname)s %(name)s %(message)s")


def access_record(caplog: pytest.LogCaptureFixture, path: str) -> logging.LogRecord:
    with caplog.at_level(logging.INFO, logger="retrochat.access"):
        Client().get(path)
    (record,) = [r for r in caplog.records if r.name == "retrochat.access"]
    return record


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/nope%0AINFO%20retrochat.access%20GET%20/admin/%20200", "/v1/nope\\x0aINFO retrochat.access GET /admin/ 200"),
        ("/v1/%1B[2J%1B]0;pwned%07", "/v1/\\x1b[2J\\x1b]0;pwned\\x07"),
        ("/v1/a%0D%09b%7Fc", "/v1/a\\x0d\\x09b\\x7fc"),
        ("/v1/%C2%85%E2%80%AEtxt.exe", "/v1/\\x85\\u202etxt.exe"),
        ("/v1/back%5Cx0a", "/v1/back\\\\x0a"),
        ("/v1/caf%C3%A9", "/v1/café"),
    ],
    ids=["newline", "terminal-escape", "c0-and-del", "c1-and-bidi", "backslash", "printable-unicode"],
)
def test_logged_path_escapes_non_printable_characters(caplog, path, logged):
    record = access_record(caplog, path)

    assert record.path == logged
    assert PLAIN.format(record) == f"INFO retrochat.access GET {logged} 404 {record.duration_ms:.1f}ms"


def test_json_line_carries_the_escaped_path(caplog):
    record = access_record(caplog, "/v1/nope%0A%1B[2J")

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["path"] == "/v1/nope\\x0a\\x1b[2J"
    assert entry["message"] == f"GET /v1/nope\\x0a\\x1b[2J 404 {record.duration_ms:.1f}ms"


def test_ordinary_path_is_logged_as_is(caplog):
    record = access_record(caplog, "/v1/rooms/room_7")

    assert (record.method, record.path, record.status) == ("GET", "/v1/rooms/room_7", 401)
