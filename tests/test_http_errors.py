"""Every /v1/ answer is JSON in the error shape, whatever the body, path, method or cookies.

- a body nested too deeply to parse is 400 INVALID_JSON, one over DATA_UPLOAD_MAX_MEMORY_SIZE is
  413 PAYLOAD_TOO_LARGE; neither is an error of ours, so neither is logged with a traceback;
- a write to an unknown /v1/ path is 404 NOT_FOUND, with or without a session cookie (no CSRF page);
- a CSRF failure on a /v1/ path is 403 CSRF_FAILED;
- a database that cannot be reached is 503 SERVICE_UNAVAILABLE (Retry-After: 5), a write the database
  aborted for a concurrent one (deadlock, serialization failure) 503 with Retry-After: 1.
"""
import json
import logging

import pytest
from django.db import OperationalError
from django.test import Client, RequestFactory

from retrochat.api import errors
from rooms.models import Message
from tests import factories

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found."}
TOO_LARGE = {
    "code": "PAYLOAD_TOO_LARGE",
    "message": "The request body is larger than the server accepts.",
}
TOO_DEEP = {"code": "INVALID_JSON", "message": "JSON parse error - nesting too deep."}


@pytest.fixture
def room(user):
    return factories.make_room(user, name="general")


def post_raw(api, room, body: bytes):
    return api.generic("POST", f"/v1/rooms/{room.pk}/messages", body, content_type="application/json")


def no_error_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deeply_nested_json_body_is_invalid_json(api, room, caplog, depth):
    response = post_raw(api, room, b'{"content": ' + b"[" * depth + b"]" * depth + b"}")

    assert response.status_code == 400
    assert response.json() == TOO_DEEP
    assert not Message.objects.exists()
    assert no_error_logged(caplog)


def test_body_over_the_upload_limit_is_payload_too_large(api, room, caplog, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_raw(api, room, b'{"content": "' + b"x" * 1000 + b'"}')

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert not Message.objects.exists()
    assert no_error_logged(caplog)


def test_body_at_the_upload_limit_is_accepted(api, room, settings):
    body = b'{"content": "' + b"x" * 100 + b'"}'
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body)

    response = post_raw(api, room, body)

    assert response.status_code == 201


# --- unknown paths -----------------------------------------------------------------------------


UNKNOWN_PATHS = ["/v1/nope", "/v1/rooms/7/nope", "/v1/rooms/room_x", "/v1/", "/v1", "/v1/a%0Ab", "/v1/%FF"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_unknown_api_path_is_a_json_404_for_every_method(method, path):
    response = Client(enforce_csrf_checks=True).generic(method, path, b"{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_unknown_api_path_is_a_json_404_with_a_session_cookie(user, method, path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.generic(method, path, b"{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_unknown_api_path_is_a_json_404_with_a_csrf_cookie_but_no_token(method):
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "x" * 32

    response = client.generic(method, "/v1/nope", b"{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- CSRF failures -----------------------------------------------------------------------------


def test_csrf_failure_on_an_api_path_is_json():
    response = errors.csrf_failure(RequestFactory().post("/v1/rooms"), reason="CSRF cookie not set.")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "code": "CSRF_FAILED",
        "message": "CSRF verification failed: CSRF cookie not set.",
    }


def test_csrf_failure_elsewhere_is_djangos_page():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_csrf_failure_view_is_configured(settings):
    assert settings.CSRF_FAILURE_VIEW == "retrochat.api.errors.csrf_failure"


def test_a_write_the_database_aborted_for_a_concurrent_one_is_503_with_a_short_retry(caplog):
    """PostgreSQL's deadlock and serialization failures (SQLSTATE 40P01, 40001) roll back one of two
    racing transactions: the database is up, and the write succeeds when sent again."""

    class Deadlock(Exception):
        sqlstate = "40P01"

    try:
        raise OperationalError("deadlock detected") from Deadlock("deadlock detected")
    except OperationalError as exc:
        response = errors.exception_handler(exc, {"view": None})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "The database aborted this write because of a concurrent one; nothing was saved; try again.",
    }
    assert no_error_logged(caplog)


def test_a_database_that_cannot_be_reached_is_503_database_not_reachable():
    try:
        raise OperationalError("connection refused") from ConnectionRefusedError()
    except OperationalError as exc:
        response = errors.exception_handler(exc, {"view": None})
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert response.data == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "The database is not reachable; try again shortly.",
    }
