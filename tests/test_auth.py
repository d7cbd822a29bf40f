"""API-key and session authentication over REST."""
import logging
import re
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from tests import factories
from tests.openapi import SchemaCheckedClient
from tests.support import api_client
from users import services
from retrochat.logs import RedactingFormatter
from users.models import ApiKey

ME = "/v1/users/me"
UNAUTHORIZED = {
    "code": "UNAUTHORIZED",
    "message": "Authentication credentials were not provided or are not valid.",
}
WWW_AUTHENTICATE = 'Bearer realm="retrochat"'
KEY_FORMAT = re.compile(r"rc_[A-Za-z0-9_-]{32,}")
# Well-formed (it matches the key format) but never issued.
UNKNOWN_KEY = "rc_" + "A" * 43

pytestmark = pytest.mark.django_db


def with_header(value: str) -> SchemaCheckedClient:
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == WWW_AUTHENTICATE


def unauthorized_content(client: SchemaCheckedClient) -> bytes:
    response = client.get(ME)
    assert_unauthorized(response)
    return response.content


def expired_key(user) -> str:
    api_key, secret = services.api_key_create(user=user, name="old", expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return secret


def revoked_key(user) -> str:
    api_key, secret = services.api_key_create(user=user, name="gone")
    services.api_key_revoke(api_key=api_key)
    return secret


# --- Rejections: one answer for every failure --------------------------------------------------


def test_missing_authorization_header_is_unauthorized(anon):
    assert_unauthorized(anon.get(ME))


def test_malformed_key_is_unauthorized(user):
    assert_unauthorized(api_client("not-a-key").get(ME))


def test_bearer_without_a_key_is_unauthorized(user):
    assert_unauthorized(with_header("Bearer").get(ME))


def test_bearer_with_two_tokens_is_unauthorized(user):
    key = factories.make_key(user)
    assert_unauthorized(with_header(f"Bearer {key} extra").get(ME))


def test_non_ascii_key_is_unauthorized(user):
    assert_unauthorized(with_header("Bearer rc_" + "é" * 40).get(ME))


def test_unknown_well_formed_key_is_unauthorized(user):
    assert_unauthorized(api_client(UNKNOWN_KEY).get(ME))


def test_key_with_a_known_prefix_but_wrong_secret_is_unauthorized(user):
    key = factories.make_key(user)
    forged = key[:11] + ("B" if key[11] != "B" else "C") + key[12:]
    assert_unauthorized(api_client(forged).get(ME))


def test_expired_key_is_unauthorized(user):
    assert_unauthorized(api_client(expired_key(user)).get(ME))


def test_revoked_key_is_unauthorized(user):
    assert_unauthorized(api_client(revoked_key(user)).get(ME))


def test_key_of_an_inactive_user_is_unauthorized(user):
    key = factories.make_key(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_unauthorized(api_client(key).get(ME))


def test_basic_scheme_is_unauthorized(user):
    assert_unauthorized(with_header("Basic YWRhOnBhc3N3b3Jk").get(ME))


def test_every_rejection_has_a_byte_identical_body(user, other_user):
    inactive_key = factories.make_key(other_user)
    other_user.is_active = False
    other_user.save(update_fields=["is_active"])
    clients = {
        "missing": SchemaCheckedClient(),
        "malformed": api_client("not-a-key"),
        "bearer without key": with_header("Bearer"),
        "unknown": api_client(UNKNOWN_KEY),
        "expired": api_client(expired_key(user)),
        "revoked": api_client(revoked_key(user)),
        "inactive user": api_client(inactive_key),
        "basic scheme": with_header("Basic YWRhOnBhc3N3b3Jk"),
    }

    bodies = {case: unauthorized_content(client) for case, client in clients.items()}

    assert set(bodies.values()) == {bodies["missing"]}, bodies


def test_unauthorized_answer_is_the_same_on_a_write(user):
    response = api_client(revoked_key(user)).patch(ME, {"display_name": "Mallory"}, format="json")

    assert_unauthorized(response)
    user.refresh_from_db()
    assert user.display_name == "Ada"


# --- Valid keys ----------------------------------------------------------------------------


def test_valid_key_authenticates_as_its_user(user):
    response = api_client(factories.make_key(user)).get(ME)

    assert response.status_code == 200
    assert response.json()["id"] == f"user_{user.pk}"


def test_scheme_keyword_is_case_insensitive(user):
    response = with_header(f"bearer {factories.make_key(user)}").get(ME)

    assert response.status_code == 200
    assert response.json()["id"] == f"user_{user.pk}"


def test_key_with_a_future_expiry_authenticates(user):
    _, secret = services.api_key_create(user=user, name="soon", expires_at=timezone.now() + timedelta(days=1))

    assert api_client(secret).get(ME).status_code == 200


def test_last_used_at_is_set_on_first_use(user):
    api_key, secret = services.api_key_create(user=user, name="fresh")
    assert api_key.last_used_at is None

    assert api_client(secret).get(ME).status_code == 200

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_last_used_at_is_not_rewritten_within_a_minute(user):
    api_key, secret = services.api_key_create(user=user, name="busy")
    recently = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=recently)

    assert api_client(secret).get(ME).status_code == 200

    api_key.refresh_from_db()
    assert api_key.last_used_at == recently


def test_last_used_at_is_rewritten_after_a_minute(user):
    api_key, secret = services.api_key_create(user=user, name="idle")
    earlier = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=earlier)

    assert api_client(secret).get(ME).status_code == 200

    api_key.refresh_from_db()
    assert api_key.last_used_at > earlier


def test_rejected_key_does_not_touch_last_used_at(user):
    api_key, secret = services.api_key_create(user=user, name="revoked")
    services.api_key_revoke(api_key=api_key)

    assert_unauthorized(api_client(secret).get(ME))

    api_key.refresh_from_db()
    assert api_key.last_used_at is None


# --- Storage ---------------------------------------------------------------------------------


def test_key_has_the_documented_format(user):
    key = factories.make_key(user)

    assert KEY_FORMAT.fullmatch(key), key


def test_keys_are_unique(user):
    assert factories.make_key(user) != factories.make_key(user)


def test_key_is_stored_as_a_lookup_prefix_and_a_hash(user):
    api_key, secret = services.api_key_create(user=user, name="stored")

    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert stored["prefix"] == secret[:11]
    random_part = secret[11:]
    for column, value in stored.items():
        assert secret not in str(value), column
        assert random_part not in str(value), column


# --- Logs --------------------------------------------------------------------------------------


def test_keys_never_reach_the_logs(user, other_user, caplog, settings):
    # DEBUG makes Django log every SQL statement too, so a key in a query would show up here.
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    valid = factories.make_key(user)
    revoked = revoked_key(other_user)
    expired = expired_key(other_user)

    assert api_client(valid).get(ME).status_code == 200
    assert api_client(valid).patch(ME, {"display_name": "Ada L."}, format="json").status_code == 200
    assert api_client(valid).get("/v1/no-such-endpoint").status_code == 404
    assert_unauthorized(api_client(revoked).get(ME))
    assert_unauthorized(api_client(expired).get(ME))
    assert_unauthorized(api_client(UNKNOWN_KEY).get(ME))

    assert caplog.records, "expected the requests to log something (SQL at least)"
    for secret in (valid, revoked, expired, UNKNOWN_KEY):
        assert secret not in caplog.text
        assert secret[11:] not in caplog.text


def test_redacting_formatter_hides_a_key_in_the_message():
    key = "rc_" + "x1_-Y" * 9
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "got key %s from client", (key,), None)

    output = RedactingFormatter("%(message)s").format(record)

    assert output == "got key rc_[redacted] from client"


def test_redacting_formatter_hides_a_key_in_a_traceback():
    key = "rc_" + "Zz9-_" * 9
    try:
        raise ValueError(f"bad key {key}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("test", logging.ERROR, __file__, 1, "failed", (), exc_info)

    output = RedactingFormatter("%(message)s").format(record)

    assert key not in output
    assert "ValueError: bad key rc_[redacted]" in output


def test_the_console_log_handler_redacts_keys():
    formatters = [handler.formatter for handler in logging.getLogger().handlers]

    assert any(isinstance(formatter, RedactingFormatter) for formatter in formatters), formatters


# --- Session authentication ----------------------------------------------------------------


def test_session_authenticates_a_read(user):
    client = SchemaCheckedClient()
    client.force_login(user)

    response = client.get(ME)

    assert response.status_code == 200
    assert response.json()["id"] == f"user_{user.pk}"


def test_session_of_a_deactivated_user_is_unauthorized(user):
    client = SchemaCheckedClient()
    client.force_login(user)
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = client.get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_session_write_without_csrf_token_is_forbidden(user):
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.patch(ME, {"display_name": "Forged"}, format="json")

    assert response.status_code == 403
    assert response.json() == {"code": "FORBIDDEN", "message": "CSRF Failed: CSRF cookie not set."}
    user.refresh_from_db()
    assert user.display_name == "Ada"


def test_session_write_with_csrf_token_succeeds(user):
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(user)
    token = "a" * 32
    client.cookies["csrftoken"] = token

    response = client.patch(ME, {"display_name": "Ada L."}, format="json", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 200
    assert response.json()["display_name"] == "Ada L."


def test_api_key_write_needs_no_csrf_token(user):
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_key(user)}")

    response = client.patch(ME, {"display_name": "Ada L."}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Ada L."
