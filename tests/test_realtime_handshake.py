"""The WebSocket handshake: who may connect, how, and what they are told.

Credentials are tried in this order: the `Authorization` header, the subprotocol pair
`retrochat.v1, bearer.<key>`, then a Django session cookie from an Origin of this site. A refused
handshake is accepted first, so that the client reads the reason: one error frame, then a close
with its close code (docs/realtime.md, "Errors and close codes").
"""
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from tests import factories
from tests.realtime_client import bearer, connected, opened, sync
from tests.support import assert_refused, error_frame
from users import services as user_services
from users.models import ApiKey, User

pytestmark = pytest.mark.django_db(transaction=True)

SITE_ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture(autouse=True)
def _allowed_origins(settings):
    """The default list of a server on 127.0.0.1:8000, whatever HOST and PORT the test run has."""
    settings.RETROCHAT_ALLOWED_ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]


def _user_with_key(username: str = "ada") -> tuple[User, str]:
    user = factories.make_user(username)
    return user, factories.make_key(user)


@pytest.fixture
async def ada() -> tuple[User, str]:
    return await sync(_user_with_key)()


def _session_cookie(user: User) -> tuple[bytes, bytes]:
    """A logged-in Django session for `user`, as the browser would send it."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}".encode())


# --- API key in the Authorization header ---------------------------------------------------


async def test_bearer_header_connects_with_the_connected_frame(ada):
    user, key = ada
    async with opened([bearer(key)]) as socket:
        accepted, subprotocol = await socket.open()
        assert (accepted, subprotocol) == (True, None)
        frame = await socket.receive()
        assert frame == {
            "type": "connected",
            "connection_id": frame["connection_id"],
            "user_id": f"user_{user.pk}",
            "heartbeat_interval": 25,
            "limits": {"max_subscriptions": 100, "max_frame_bytes": 65536, "rate_per_second": 20, "rate_burst": 40},
        }
        assert isinstance(frame["connection_id"], str) and frame["connection_id"]


async def test_each_connection_gets_its_own_connection_id(ada):
    _, key = ada
    async with connected(key) as first, connected(key) as second:
        assert first.hello["connection_id"] != second.hello["connection_id"]


async def test_connected_frame_reports_the_configured_limits(ada, settings):
    settings.RETROCHAT_MAX_SUBSCRIPTIONS = 7
    settings.RETROCHAT_MAX_FRAME_BYTES = 4096
    settings.RETROCHAT_RATE_PER_SECOND = 3
    _, key = ada
    async with connected(key) as socket:
        assert socket.hello["limits"] == {"max_subscriptions": 7, "max_frame_bytes": 4096, "rate_per_second": 3, "rate_burst": 40}


async def test_bearer_scheme_is_case_insensitive(ada):
    user, key = ada
    async with opened([(b"authorization", f"bearer {key}".encode())]) as socket:
        assert (await socket.open())[0]
        assert (await socket.receive())["user_id"] == f"user_{user.pk}"


# --- API key in the subprotocol pair --------------------------------------------------------


async def test_subprotocol_pair_connects_and_selects_retrochat_v1(ada):
    user, key = ada
    async with opened(subprotocols=["retrochat.v1", f"bearer.{key}"]) as socket:
        accepted, subprotocol = await socket.open()
        assert (accepted, subprotocol) == (True, "retrochat.v1")
        frame = await socket.receive()
        assert frame["type"] == "connected"
        assert frame["user_id"] == f"user_{user.pk}"


async def test_subprotocol_key_is_never_echoed(ada):
    _, key = ada
    async with opened(subprotocols=["retrochat.v1", f"bearer.{key}"]) as socket:
        await socket.open()
        text = await socket.receive_text()
        assert key not in text
        assert all(key.encode() not in value for _, value in socket.communicator.response_headers)


async def test_bearer_subprotocol_without_retrochat_v1_is_unauthorized(ada):
    _, key = ada
    async with opened(subprotocols=[f"bearer.{key}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_header_is_tried_before_the_subprotocol(ada):
    _, key = ada
    other, other_key = await sync(_user_with_key)("bob")
    async with opened([bearer(other_key)], subprotocols=["retrochat.v1", f"bearer.{key}"]) as socket:
        accepted, subprotocol = await socket.open()
        assert (accepted, subprotocol) == (True, "retrochat.v1")
        assert (await socket.receive())["user_id"] == f"user_{other.pk}"


async def test_invalid_header_key_is_not_rescued_by_a_valid_subprotocol_key(ada):
    _, key = ada
    async with opened([bearer("rc_" + "x" * 43)], subprotocols=["retrochat.v1", f"bearer.{key}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


# --- refused keys -------------------------------------------------------------------------


async def test_no_credentials_is_unauthorized():
    async with opened() as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer rc_" + b"A" * 43,  # well-formed, unknown
        b"Bearer rc_short",
        b"Bearer not-a-key",
        b"Bearer ",
        b"Bearer",
        b"Token rc_" + b"A" * 43,
        b"Bearer \xff\xfe",
    ],
    ids=["unknown", "too-short", "no-prefix", "empty", "no-key", "other-scheme", "not-ascii"],
)
async def test_unknown_or_malformed_key_is_unauthorized(authorization):
    async with opened([(b"authorization", authorization)]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_unauthorized_message_never_contains_the_key(ada):
    user, key = ada
    await sync(user_services.api_key_revoke)(api_key=await sync(ApiKey.objects.get)(user=user))
    async with opened([bearer(key)]) as socket:
        frame = await assert_refused(socket, "UNAUTHORIZED", 4001)
        assert key not in frame["message"] and key[:11] not in frame["message"]


async def test_expired_key_is_unauthorized(ada):
    user, _ = ada
    _, expired = await sync(user_services.api_key_create)(
        user=user, name="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    async with opened([bearer(expired)]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_revoked_key_is_unauthorized(ada):
    user, key = ada
    await sync(user_services.api_key_revoke)(api_key=await sync(ApiKey.objects.get)(user=user))
    async with opened([bearer(key)]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_revoked_key_in_the_subprotocol_is_unauthorized(ada):
    user, key = ada
    await sync(user_services.api_key_revoke)(api_key=await sync(ApiKey.objects.get)(user=user))
    async with opened(subprotocols=["retrochat.v1", f"bearer.{key}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_inactive_user_is_unauthorized_whatever_key_it_holds(ada):
    user, key = ada
    user.is_active = False
    await sync(user.save)()
    async with opened([bearer(key)]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_key_in_the_query_string_is_not_accepted(ada):
    _, key = ada
    async with opened(path=f"/v1/realtime?key={key}") as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_other_paths_are_refused_without_accepting(ada):
    _, key = ada
    async with opened([bearer(key)], path="/v1/other") as socket:
        accepted, _ = await socket.open()
        assert not accepted


# --- session cookie ------------------------------------------------------------------------


async def test_session_cookie_from_the_site_origin_connects(ada):
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    async with opened([cookie, SITE_ORIGIN]) as socket:
        assert (await socket.open())[0]
        frame = await socket.receive()
        assert frame["type"] == "connected"
        assert frame["user_id"] == f"user_{user.pk}"


@pytest.mark.parametrize("origin", [b"http://localhost:8000", b"http://127.0.0.1:8000"], ids=["localhost", "127.0.0.1"])
async def test_session_cookie_from_each_allowed_origin_connects(ada, origin):
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    async with opened([cookie, (b"origin", origin)]) as socket:
        assert (await socket.open())[0]
        assert (await socket.receive())["user_id"] == f"user_{user.pk}"


async def test_session_cookie_from_a_configured_origin_connects(ada, settings):
    settings.RETROCHAT_ALLOWED_ORIGINS = ["https://chat.example.com"]
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    async with opened([cookie, (b"origin", b"https://chat.example.com")]) as socket:
        assert (await socket.open())[0]
        assert (await socket.receive())["user_id"] == f"user_{user.pk}"


@pytest.mark.parametrize(
    "origin",
    [
        b"http://evil.example",
        b"http://localhost:8000.evil.example",
        b"https://localhost:8000",
        b"https://localhost",
        b"http://localhost",
        b"http://localhost:9999",
        b"http://localhost:8000/",
        b"null",
        b"",
    ],
    ids=["foreign", "lookalike", "other-scheme", "other-scheme-no-port", "no-port", "other-port", "trailing-slash", "null", "empty"],
)
async def test_session_cookie_from_a_foreign_origin_is_forbidden(ada, origin):
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    async with opened([cookie, (b"origin", origin)]) as socket:
        await assert_refused(socket, "FORBIDDEN_ORIGIN", 4003)


async def test_session_cookie_without_origin_is_forbidden(ada):
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    async with opened([cookie]) as socket:
        await assert_refused(socket, "FORBIDDEN_ORIGIN", 4003)


async def test_session_of_a_deactivated_user_is_unauthorized(ada):
    user, _ = ada
    cookie = await sync(_session_cookie)(user)
    user.is_active = False
    await sync(user.save)()
    async with opened([cookie, SITE_ORIGIN]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_unknown_session_cookie_is_unauthorized():
    cookie = (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={'x' * 32}".encode())
    async with opened([cookie, SITE_ORIGIN]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


# --- connections per user ------------------------------------------------------------------


async def test_connection_over_the_per_user_limit_is_refused_with_4029(ada, settings):
    settings.RETROCHAT_MAX_CONNECTIONS_PER_USER = 2
    _, key = ada
    async with connected(key), connected(key), opened([bearer(key)]) as third:
        await assert_refused(third, "CONNECTION_LIMIT", 4029)


async def test_closing_a_connection_frees_a_place_under_the_limit(ada, settings):
    settings.RETROCHAT_MAX_CONNECTIONS_PER_USER = 2
    _, key = ada
    async with connected(key):
        async with connected(key):
            pass
        async with connected(key) as again:
            await again.assert_alive()


async def test_connection_limit_counts_per_user(ada, settings):
    settings.RETROCHAT_MAX_CONNECTIONS_PER_USER = 1
    _, key = ada
    _, bob_key = await sync(_user_with_key)("bob")
    async with connected(key), connected(bob_key) as bob:
        await bob.assert_alive()



# --- what a disconnect costs ----------------------------------------------------------------


async def test_a_disconnect_leaves_the_realtime_database_connection_open(ada):
    """Channels' websocket_disconnect closed "old" database connections on the thread that is also
    the realtime database thread (realtime/db.py): every disconnect made the next subscribe connect
    to the database again."""
    from django.db import connection

    from realtime.db import realtime_db

    user, key = ada
    room = await sync(factories.make_room)(user, "kept")
    async with connected(key) as socket:
        await socket.subscribe(f"room:{room.pk}")  # opens the realtime thread's connection if needed
        before = await realtime_db(lambda: connection.connection)()
    after = await realtime_db(lambda: connection.connection)()
    assert before is not None and after is before
