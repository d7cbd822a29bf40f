"""Connection tokens for browsers: `POST /v1/realtime/token` and the handshake that accepts them.

A page asks for a short-lived token with its session (and CSRF token) or a key, and offers it as the
subprotocol `bearer.<token>`. A bad token is refused exactly like a bad key (UNAUTHORIZED, 4001);
from a browser (an `Origin` header) the Origin must be allowed, as for session auth.
"""
from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone

from realtime import tokens
from tests import factories
from tests.openapi import SchemaCheckedClient
from tests.realtime_client import opened, sync
from tests.support import assert_refused, error_frame
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_PATH = "/v1/realtime/token"
SITE_ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture(autouse=True)
def _allowed_origins(settings):
    settings.RETROCHAT_ALLOWED_ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]


def _token_for(user: User) -> str:
    return tokens.token_issue(user=user).token


@pytest.fixture
async def ada() -> User:
    return await sync(factories.make_user)("ada")


async def assert_connects_as(socket, user: User, subprotocol: str | None = "retrochat.v1") -> None:
    assert await socket.open() == (True, subprotocol)
    frame = await socket.receive()
    assert (frame["type"], frame["user_id"]) == ("connected", f"user_{user.pk}")


# --- POST /v1/realtime/token ------------------------------------------------------------------


def _session_client(user: User) -> SchemaCheckedClient:
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_a_signed_in_page_gets_a_token_with_its_session_and_csrf_token(user):
    client = _session_client(user)
    client.get("/")  # the web app's page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value

    response = client.post(TOKEN_PATH, HTTP_X_CSRFTOKEN=csrf)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert tokens.token_user(body["token"]) == user


def test_a_session_without_the_csrf_token_gets_no_token(user):
    response = _session_client(user).post(TOKEN_PATH)

    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_a_key_gets_a_token(api, user):
    response = api.post(TOKEN_PATH)

    assert response.status_code == 201
    assert tokens.token_user(response.json()["token"]) == user


def test_an_anonymous_caller_gets_no_token(anon):
    response = anon.post(TOKEN_PATH)

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_a_token_expires_after_the_configured_lifetime(api, settings):
    settings.RETROCHAT_TOKEN_TTL = 120
    before = timezone.now().replace(microsecond=0)

    expires_at = api.post(TOKEN_PATH).json()["expires_at"]

    lifetime = timezone.datetime.fromisoformat(expires_at) - before
    assert timedelta(seconds=119) <= lifetime <= timedelta(seconds=121)
    assert expires_at.endswith("Z")


def test_a_token_is_a_valid_websocket_subprotocol_value(user):
    # RFC 6455: a subprotocol is an HTTP token; browsers throw on `:` and other separators.
    token = _token_for(user)
    assert all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in token)


# --- the handshake -----------------------------------------------------------------------------


async def test_a_token_in_the_subprotocol_pair_connects(ada):
    token = await sync(_token_for)(ada)
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_connects_as(socket, ada)


async def test_a_token_in_the_authorization_header_connects(ada):
    token = await sync(_token_for)(ada)
    async with opened([(b"authorization", f"Bearer {token}".encode())]) as socket:
        await assert_connects_as(socket, ada, subprotocol=None)


async def test_a_token_from_an_allowed_origin_connects(ada):
    token = await sync(_token_for)(ada)
    async with opened([SITE_ORIGIN], subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_connects_as(socket, ada)


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://localhost:8000", b"null", b""], ids=["foreign", "other-scheme", "null", "empty"])
async def test_a_token_from_a_foreign_origin_is_forbidden(ada, origin):
    token = await sync(_token_for)(ada)
    async with opened([(b"origin", origin)], subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_refused(socket, "FORBIDDEN_ORIGIN", 4003)


async def test_an_expired_token_is_unauthorized(ada, settings):
    settings.RETROCHAT_TOKEN_TTL = -1
    token = await sync(_token_for)(ada)
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_a_tampered_token_is_unauthorized(ada):
    token = await sync(_token_for)(ada)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with opened(subprotocols=["retrochat.v1", f"bearer.{tampered}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_a_value_signed_for_another_purpose_is_unauthorized(ada):
    other = signing.Signer(salt="something.else", sep=".").sign_object({"u": ada.pk, "x": 2**40})
    async with opened(subprotocols=["retrochat.v1", f"bearer.{other}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_a_token_dies_with_a_password_change(ada):
    token = await sync(_token_for)(ada)
    ada.set_password("a whole new secret 42")
    await sync(ada.save)()
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_a_token_of_a_deactivated_user_is_unauthorized(ada):
    token = await sync(_token_for)(ada)
    ada.is_active = False
    await sync(ada.save)()
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_a_token_of_a_deleted_user_is_unauthorized(ada):
    token = await sync(_token_for)(ada)
    await sync(ada.delete)()
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await assert_refused(socket, "UNAUTHORIZED", 4001)


async def test_the_token_is_never_echoed(ada):
    token = await sync(_token_for)(ada)
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        await socket.open()
        assert token not in await socket.receive_text()
        assert all(token.encode() not in value for _, value in socket.communicator.response_headers)


async def test_an_open_token_socket_closes_when_the_password_changes(ada):
    from realtime.hub import existing_hub

    token = await sync(_token_for)(ada)
    async with opened(subprotocols=["retrochat.v1", f"bearer.{token}"]) as socket:
        assert (await socket.open())[0]
        assert (await socket.receive())["type"] == "connected"
        await existing_hub()._revalidate()
        await socket.assert_alive()  # the token still holds…
        ada.set_password("a whole new secret 42")
        await sync(ada.save)()
        await existing_hub()._revalidate()  # …until the password it was bound to changes
        assert await socket.receive() == error_frame("UNAUTHORIZED")
        assert await socket.close_code() == 4001
