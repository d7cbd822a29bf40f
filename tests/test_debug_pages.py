"""Debug pages never show credentials: neither a settings value nor a request header holding one.

DEBUG is off unless set; a developer who turns it on still gets pages in which every setting that
can carry a password or token (URLs, cache locations, channel-layer hosts, keys) is cleansed.
"""
import pytest
from django.test import Client

from retrochat import metrics
from retrochat.debug import CredentialsReporterFilter

pytestmark = pytest.mark.django_db

SECRETS = {
    "DATABASE_URL": "postgres://chat:db-pass-0001@db.internal:5432/retrochat",
    "REDIS_URL": "redis://:redis-pass-0002@redis.internal:6379/0",
    "SECRET_KEY": "secret-key-0003-" + "x" * 40,
    "RETROCHAT_METRICS_TOKEN": "metrics-token-0004",
}
CLEANSED = "********************"


@pytest.fixture
def secrets_in_settings(settings):
    settings.DEBUG = True
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    return settings


def assert_no_secret(text: str) -> None:
    for value in [*SECRETS.values(), "db-pass-0001", "redis-pass-0002"]:
        assert value not in text


def test_disallowed_host_debug_page_on_an_api_path_shows_no_credentials(secrets_in_settings):
    response = Client().get("/v1/health", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert_no_secret(response.content.decode())


def test_technical_500_page_shows_no_credentials(secrets_in_settings, monkeypatch):
    def broken() -> bytes:
        raise RuntimeError("metrics store broken")

    monkeypatch.setattr(metrics, "exposition", broken)
    token = SECRETS["RETROCHAT_METRICS_TOKEN"]

    response = Client(raise_request_exception=False).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 500
    page = response.content.decode()
    assert "metrics store broken" in page  # the technical page itself, not the JSON handler
    assert_no_secret(page)


def test_disallowed_host_without_debug_answers_the_json_error(settings):
    settings.DEBUG = False

    response = Client().get("/v1/health", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json() == {"code": "BAD_REQUEST", "message": "The request could not be understood."}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "DATABASES",
            {"default": {"ENGINE": "postgresql", "NAME": "rc", "USER": "chat", "PASSWORD": "pw"}},
            {"default": {"ENGINE": "postgresql", "NAME": "rc", "USER": "chat", "PASSWORD": CLEANSED}},
        ),
        (
            "CACHES",
            {"default": {"BACKEND": "redis", "LOCATION": "redis://:pw@redis:6379/0"}},
            {"default": {"BACKEND": "redis", "LOCATION": CLEANSED}},
        ),
        (
            "CHANNEL_LAYERS",
            {"default": {"BACKEND": "pubsub", "CONFIG": {"hosts": [{"address": "redis://:pw@redis"}], "prefix": "rc"}}},
            {"default": {"BACKEND": "pubsub", "CONFIG": {"hosts": CLEANSED, "prefix": "rc"}}},
        ),
        ("DATABASE_URL", "postgres://chat:pw@db/rc", CLEANSED),
        ("REDIS_URL", "redis://:pw@redis:6379/0", CLEANSED),
        ("SECRET_KEY", "k", CLEANSED),
        ("RETROCHAT_METRICS_TOKEN", "t", CLEANSED),
        ("REDIS_SENTINELS", "s1:26379", CLEANSED),
    ],
    ids=["databases", "caches", "channel-layers", "database-url", "redis-url", "secret-key", "metrics-token", "sentinels"],
)
def test_credential_bearing_settings_are_cleansed(name, value, expected):
    assert CredentialsReporterFilter().cleanse_setting(name, value) == expected


def test_the_filter_is_the_configured_one(settings):
    assert settings.DEFAULT_EXCEPTION_REPORTER_FILTER == "retrochat.debug.CredentialsReporterFilter"
