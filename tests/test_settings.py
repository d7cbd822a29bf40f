"""Configuration from the environment."""
import runpy
from pathlib import Path

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

import retrochat.settings
from retrochat.env import env_bool, env_int, env_list, env_str

VAR = "RETROCHAT_TEST_VARIABLE"
REDIS_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"
IN_MEMORY_LAYER = "realtime.layers.EmbeddedChannelLayer"


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> dict:
    """Execute the settings module afresh under `env` (None unsets a variable)."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    # run_path, not run_module: the real module stays untouched in sys.modules.
    return runpy.run_path(retrochat.settings.__file__, run_name="retrochat_settings_under_test")


# --- env helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_env_bool_reads_true(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    assert env_bool(VAR, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", ""])
def test_env_bool_reads_false(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    assert env_bool(VAR, True) is False


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_is_the_default(monkeypatch, default):
    monkeypatch.delenv(VAR, raising=False)

    assert env_bool(VAR, default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y es"])
def test_env_bool_rejects_garbage(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured, match=VAR):
        env_bool(VAR, True)


def test_env_int_reads_an_integer(monkeypatch):
    monkeypatch.setenv(VAR, "250")

    assert env_int(VAR, 7) == 250


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_env_int_unset_or_empty_is_the_default(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VAR, raising=False)
    else:
        monkeypatch.setenv(VAR, raw)

    assert env_int(VAR, 7) == 7


@pytest.mark.parametrize("raw", ["abc", "1.5", "10k", "0x10"])
def test_env_int_rejects_garbage(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured, match=VAR):
        env_int(VAR, 7)


@pytest.mark.parametrize("raw", ["0", "-5"])
def test_env_int_rejects_values_below_the_minimum(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)

    with pytest.raises(ImproperlyConfigured, match=VAR):
        env_int(VAR, 7)


def test_env_int_accepts_a_custom_minimum(monkeypatch):
    monkeypatch.setenv(VAR, "0")

    assert env_int(VAR, 7, minimum=0) == 0


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv(VAR, " example.com, ,api.example.com ,")

    assert env_list(VAR, ["default"]) == ["example.com", "api.example.com"]


def test_env_list_unset_is_the_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)

    assert env_list(VAR, ["default"]) == ["default"]


def test_env_str_unset_is_the_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)

    assert env_str(VAR, "fallback") == "fallback"


# --- The configuration in use ------------------------------------------------------------------


def test_configured_channel_layer_follows_redis_url():
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]

    if settings.REDIS_URL:
        assert backend == REDIS_LAYER
        assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] == [
            {"address": settings.REDIS_URL, "max_connections": 200}
        ]
    else:
        assert backend == IN_MEMORY_LAYER


def test_channel_layer_instance_matches_the_configuration():
    from channels_redis.pubsub import RedisPubSubChannelLayer

    expected = RedisPubSubChannelLayer if settings.REDIS_URL else InMemoryChannelLayer

    assert isinstance(get_channel_layer(), expected)


# --- The settings module under other environments ----------------------------------------------


def test_redis_url_selects_the_redis_pubsub_layer_and_a_shared_cache(monkeypatch):
    loaded = load_settings(monkeypatch, REDIS_URL="redis://cache.internal:6379/2")

    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == REDIS_LAYER
    # An explicit pool size: redis-py's default (100) raises MaxConnectionsError under load.
    assert loaded["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == [
        {"address": "redis://cache.internal:6379/2", "max_connections": 200}
    ]
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert loaded["CACHES"]["default"]["LOCATION"] == "redis://cache.internal:6379/2"


def test_redis_sentinel_configures_the_layer_through_the_sentinels(monkeypatch):
    loaded = load_settings(
        monkeypatch,
        REDIS_URL="redis://:secret@ignored:6379/3",
        REDIS_SENTINELS="s1.internal:26379,s2.internal",
        REDIS_SENTINEL_MASTER="chat",
    )

    assert loaded["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == [
        {
            "master_name": "chat",
            "sentinels": [("s1.internal", 26379), ("s2.internal", 26379)],
            "max_connections": 200,
            "password": "secret",
            "db": 3,
        }
    ]


def test_without_redis_url_the_layer_is_in_memory(monkeypatch):
    loaded = load_settings(monkeypatch, REDIS_URL=None)

    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == IN_MEMORY_LAYER
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_database_url_selects_postgresql(monkeypatch):
    loaded = load_settings(monkeypatch, DATABASE_URL="postgres://chat:pw@db.internal:5432/retrochat")

    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 5432, "retrochat")


def test_without_database_url_the_database_is_a_sqlite_file_in_the_project(monkeypatch):
    loaded = load_settings(monkeypatch, DATABASE_URL=None)

    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(database["NAME"]) == loaded["BASE_DIR"] / "db.sqlite3"


def test_write_throttle_defaults_to_120_per_minute(monkeypatch):
    loaded = load_settings(monkeypatch, RETROCHAT_WRITE_THROTTLE=None)

    assert loaded["RETROCHAT_WRITE_THROTTLE"] == "120/min"
    assert loaded["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"] == {"write": "120/min"}


@pytest.mark.parametrize("raw", ["off", "OFF", " Off "])
def test_write_throttle_off_disables_it(monkeypatch, raw):
    loaded = load_settings(monkeypatch, RETROCHAT_WRITE_THROTTLE=raw)

    assert loaded["RETROCHAT_WRITE_THROTTLE"] is None


def test_limits_have_the_documented_defaults(monkeypatch):
    names = [
        "RETROCHAT_MAX_FRAME_BYTES",
        "RETROCHAT_MAX_SUBSCRIPTIONS",
        "RETROCHAT_RATE_PER_SECOND",
        "RETROCHAT_RATE_BURST",
        "RETROCHAT_MAX_CONNECTIONS_PER_USER",
    ]
    loaded = load_settings(monkeypatch, **dict.fromkeys(names))

    assert [loaded[name] for name in names] == [65536, 100, 20, 40, 50]


def test_a_limit_is_overridden_by_its_environment_variable(monkeypatch):
    loaded = load_settings(monkeypatch, RETROCHAT_MAX_SUBSCRIPTIONS="7")

    assert loaded["RETROCHAT_MAX_SUBSCRIPTIONS"] == 7


def test_a_garbage_limit_stops_startup(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="RETROCHAT_MAX_FRAME_BYTES"):
        load_settings(monkeypatch, RETROCHAT_MAX_FRAME_BYTES="lots")


def test_debug_is_off_unless_set(monkeypatch):
    loaded = load_settings(monkeypatch, DEBUG=None)

    assert loaded["DEBUG"] is False


def test_debug_is_on_when_set(monkeypatch):
    loaded = load_settings(monkeypatch, DEBUG="1")

    assert loaded["DEBUG"] is True


def test_a_deployment_without_secret_key_stops_startup(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        load_settings(monkeypatch, ALLOWED_HOSTS="chat.example.com", SECRET_KEY=None, DEBUG=None)


def test_a_local_server_without_secret_key_uses_the_generated_key(monkeypatch):
    loaded = load_settings(monkeypatch, ALLOWED_HOSTS=None, SECRET_KEY=None, DEBUG=None)

    assert loaded["SECRET_KEY"] == (loaded["BASE_DIR"] / ".secret_key").read_text().strip()
    assert len(loaded["SECRET_KEY"]) >= 50


def test_secret_key_comes_from_the_environment(monkeypatch):
    loaded = load_settings(monkeypatch, DEBUG="0", SECRET_KEY="s3cret-from-env")

    assert loaded["SECRET_KEY"] == "s3cret-from-env"
    assert loaded["DEBUG"] is False


def test_allowed_hosts_come_from_the_environment(monkeypatch):
    loaded = load_settings(monkeypatch, ALLOWED_HOSTS="chat.example.com,api.example.com", SECRET_KEY="s3cret")

    assert loaded["ALLOWED_HOSTS"] == ["chat.example.com", "api.example.com"]


def test_cors_allowed_origins_come_from_the_environment(monkeypatch):
    loaded = load_settings(monkeypatch, CORS_ALLOWED_ORIGINS="https://app.example.com, http://localhost:5173")

    assert loaded["CORS_ALLOWED_ORIGINS"] == ["https://app.example.com", "http://localhost:5173"]


def test_no_origin_may_call_the_api_cross_site_by_default(monkeypatch):
    loaded = load_settings(monkeypatch, CORS_ALLOWED_ORIGINS=None)

    assert loaded["CORS_ALLOWED_ORIGINS"] == []


def test_log_format_json_writes_one_object_per_line_without_keys(monkeypatch):
    import json
    import logging

    from retrochat.logs import JsonFormatter

    loaded = load_settings(monkeypatch, LOG_FORMAT="json")
    assert loaded["LOGGING"]["handlers"]["console"]["formatter"] == "json"
    record = logging.LogRecord("retrochat.access", logging.INFO, __file__, 1, "GET %s %s", ("/v1/rooms", 200), None)
    record.status = 200
    record.user_id = 7
    record.note = "key rc_abcdefghijklmnopqrstuvwxyz0123456789ABCD in a message"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO"
    assert entry["logger"] == "retrochat.access"
    assert entry["message"] == "GET /v1/rooms 200"
    assert (entry["status"], entry["user_id"]) == (200, 7)
    assert entry["note"] == "key rc_[redacted] in a message"
    assert entry["time"].endswith("Z")


def test_an_unknown_log_format_is_refused(monkeypatch):
    with pytest.raises(ImproperlyConfigured):
        load_settings(monkeypatch, LOG_FORMAT="xml")


def test_the_core_redis_layer_can_be_chosen_with_a_capacity_that_does_not_drop_bursts(monkeypatch):
    loaded = load_settings(monkeypatch, REDIS_URL="redis://cache.internal:6379/2", RETROCHAT_CHANNEL_LAYER="core")

    layer = loaded["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"]["capacity"] == 100_000


def test_an_unknown_channel_layer_is_refused(monkeypatch):
    with pytest.raises(ImproperlyConfigured):
        load_settings(monkeypatch, REDIS_URL="redis://cache.internal:6379/2", RETROCHAT_CHANNEL_LAYER="kafka")


def test_allowed_origins_default_to_the_local_server(monkeypatch):
    loaded = load_settings(monkeypatch, CORS_ALLOWED_ORIGINS=None, HOST=None, PORT=None)

    assert loaded["RETROCHAT_ALLOWED_ORIGINS"] == ["http://127.0.0.1:8000", "http://localhost:8000"]


def test_allowed_origins_default_follows_host_and_port(monkeypatch):
    loaded = load_settings(monkeypatch, CORS_ALLOWED_ORIGINS=None, HOST="chat.lan", PORT="9000")

    assert loaded["RETROCHAT_ALLOWED_ORIGINS"] == [
        "http://127.0.0.1:9000", "http://localhost:9000", "http://chat.lan:9000",
    ]


def test_allowed_origins_come_from_cors_allowed_origins(monkeypatch):
    loaded = load_settings(monkeypatch, CORS_ALLOWED_ORIGINS="https://Chat.Example.com/, http://localhost:3000")

    assert loaded["RETROCHAT_ALLOWED_ORIGINS"] == ["https://chat.example.com", "http://localhost:3000"]
