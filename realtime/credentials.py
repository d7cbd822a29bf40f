"""Who is connecting: the WebSocket handshake's credentials, in the order the spec gives.

1. `Authorization: Bearer <key>`;
2. the subprotocol pair `retrochat.v1, bearer.<key>` (browsers cannot set headers); the server
   selects `retrochat.v1` and never echoes the key;
3. the Django session cookie, only from an `Origin` listed in RETROCHAT_ALLOWED_ORIGINS
   (cross-site WebSocket hijacking). A key in the query string is never accepted.

In 1 and 2 a secret that is not in the API key format (`rc_…`) is a connection token from
`POST /v1/realtime/token` (realtime/tokens.py).
"""
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, cast

from channels.auth import get_user
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare

from realtime import protocol, tokens
from realtime.db import realtime_db
from users import keys
from users.models import ApiKey, User

SUBPROTOCOL = "retrochat.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."


@dataclass(frozen=True)
class Credentials:
    """The outcome of the handshake: a user (and the key that authenticated it), or an error."""

    user: User | None = None
    api_key: ApiKey | None = None
    error: str | None = None  # protocol.UNAUTHORIZED or protocol.FORBIDDEN_ORIGIN
    subprotocol: str | None = None
    session_key: str | None = None  # when the session cookie authenticated the user
    token_binding: str | None = None  # when a connection token did: what it was bound to


def _header(scope: Mapping[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def chosen_subprotocol(scope: Mapping[str, Any]) -> str | None:
    return SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", []) else None


def _bearer_from_header(scope: Mapping[str, Any]) -> str | None:
    """The key from `Authorization: Bearer …`; '' when the header is there but not a bearer key."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    parts = raw.split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return ""
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return ""


def _bearer_from_subprotocols(scope: Mapping[str, Any]) -> str | None:
    offered = scope.get("subprotocols", [])
    if SUBPROTOCOL not in offered:
        return None
    for item in offered:
        if item.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return item[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return None


def origin_allowed(scope: Mapping[str, Any]) -> bool:
    """The whole Origin, scheme and port included, is one of RETROCHAT_ALLOWED_ORIGINS."""
    raw = _header(scope, b"origin")
    return raw is not None and raw.decode("latin-1").lower() in settings.RETROCHAT_ALLOWED_ORIGINS


def _session_key(scope: Mapping[str, Any]) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    return parse_cookie(raw.decode("latin-1")).get(settings.SESSION_COOKIE_NAME) or None


async def _session_user(session_key: str) -> User | AnonymousUser:
    # Loaded here, once, rather than through Channels' SessionMiddleware, which would wrap every
    # frame this connection sends (a cost on the delivery path) to save a session nobody changes.
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # types-channels wants a whole scope; get_user reads only scope["session"]. The user model is User.
    user = await get_user({"session": session})  # type: ignore[typeddict-item]
    return cast(User | AnonymousUser, user)


class VerifiedKeys:
    """API keys this process verified in the last TTL seconds, by digest: a reconnect storm (a deploy,
    a network blip) costs no database read per connect. Revoking a key or deactivating its user
    forgets it at once on every process (the hub applies RevokeKey/RevokeUser, which travel through
    the event log); a change made without them (`QuerySet.update()`) is caught by the TTL, and the
    open sockets by the periodic re-validation. Unknown or invalid keys are never remembered."""

    TTL_SECONDS = 30.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        # Counts the forgets: a key verified in the database before a revocation that this process
        # applied while the check was in flight must not be remembered after it (`put`'s `seen`).
        self.forgets = 0

    def get(self, secret: str) -> ApiKey | None:
        entry = self._entries.get(keys.digest(secret))
        if entry is None:
            return None
        api_key, verified_at = entry
        if time.monotonic() - verified_at > self.TTL_SECONDS or api_key.is_expired:
            self._entries.pop(api_key.hashed_key, None)
            return None
        return api_key

    def put(self, secret: str, api_key: ApiKey, *, seen: int) -> None:
        """Remember a key verified in the database; `seen`: `forgets` when that check began."""
        if seen != self.forgets:  # a revocation was applied meanwhile: the check may predate it
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()  # a crude bound: a refill costs one query per key
        self._entries[keys.digest(secret)] = (api_key, time.monotonic())

    def forget_key(self, key_id: int) -> None:
        self.forgets += 1
        self._entries = {d: e for d, e in self._entries.items() if e[0].pk != key_id}

    def forget_user(self, user_id: int) -> None:
        self.forgets += 1
        self._entries = {d: e for d, e in self._entries.items() if e[0].user_id != user_id}


verified_keys = VerifiedKeys()


async def authenticate(scope: Mapping[str, Any]) -> Credentials:
    subprotocol = chosen_subprotocol(scope)
    secret = _bearer_from_header(scope)
    if secret is None:
        secret = _bearer_from_subprotocols(scope)
    if secret is not None:
        if secret and not secret.startswith(keys.KEY_PREFIX):
            return await _token_credentials(scope, secret, subprotocol)
        api_key = verified_keys.get(secret) if secret else None
        if api_key is None and secret:
            seen = verified_keys.forgets
            api_key = await realtime_db(keys.verify)(secret)
            if api_key is not None:
                verified_keys.put(secret, api_key, seen=seen)
        if api_key is None:
            return Credentials(error=protocol.UNAUTHORIZED, subprotocol=subprotocol)
        return Credentials(user=api_key.user, api_key=api_key, subprotocol=subprotocol)
    session_key = _session_key(scope)
    if session_key:
        user = await _session_user(session_key)
        if user.is_authenticated:
            if not origin_allowed(scope):
                return Credentials(error=protocol.FORBIDDEN_ORIGIN, subprotocol=subprotocol)
            return Credentials(user=user, subprotocol=subprotocol, session_key=session_key)
    return Credentials(error=protocol.UNAUTHORIZED, subprotocol=subprotocol)


async def _token_credentials(scope: Mapping[str, Any], token: str, subprotocol: str | None) -> Credentials:
    """A connection token. A browser always sends `Origin`: then it must be allowed, exactly as for
    session auth, so a token leaked to another site's page is useless there. Clients that are not
    browsers (servers, Node, mobile) send no Origin and are not exposed to cross-site hijacking."""
    # The Origin first: a foreign page learns nothing about whether a token it holds is valid.
    if _header(scope, b"origin") is not None and not origin_allowed(scope):
        return Credentials(error=protocol.FORBIDDEN_ORIGIN, subprotocol=subprotocol)
    user = await realtime_db(tokens.token_user)(token)
    if user is None:
        return Credentials(error=protocol.UNAUTHORIZED, subprotocol=subprotocol)
    return Credentials(user=user, subprotocol=subprotocol, token_binding=tokens.user_binding(user))


# --- Re-validation of open connections -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionCredentials:
    """What an open connection authenticated with, for the periodic re-validation."""

    connection_id: str
    user_id: int
    api_key_id: int | None = None
    session_key: str | None = None
    token_binding: str | None = None  # a token socket ends with the password the token was bound to


_BATCH = 500  # ids per query


def invalid_connections(held: list[ConnectionCredentials]) -> set[str]:
    """The ids of the connections whose credentials no longer hold: the user is inactive or deleted,
    the key revoked, expired or deleted, the session ended (logout, expiry, password change), or the
    password a connection token was bound to changed.
    A few batched queries for all of them, whatever way the change was made (even `update()`)."""
    users = {user.pk: user for user in _in_batches(User.objects.filter(is_active=True), {h.user_id for h in held})}
    usable_keys = {key.pk for key in _in_batches(ApiKey.objects.usable(), {h.api_key_id for h in held if h.api_key_id})}
    sessions = _session_data({h.session_key for h in held if h.session_key})
    invalid = set()
    for item in held:
        user = users.get(item.user_id)
        if (
            user is None
            or (item.api_key_id is not None and item.api_key_id not in usable_keys)
            or (item.session_key is not None and not _session_is_users(sessions.get(item.session_key), user))
            or (item.token_binding is not None and not constant_time_compare(item.token_binding, tokens.user_binding(user)))
        ):
            invalid.add(item.connection_id)
    return invalid


def _in_batches(queryset: Any, ids: set[int]) -> list[Any]:
    ordered = sorted(ids)
    found: list[Any] = []
    for start in range(0, len(ordered), _BATCH):
        found.extend(queryset.filter(pk__in=ordered[start : start + _BATCH]))
    return found


def _session_data(keys: set[str]) -> dict[str, dict[str, Any]]:
    """Decoded data of the sessions that still exist and have not expired."""
    if not keys:
        return {}
    engine = import_module(settings.SESSION_ENGINE)
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        from django.contrib.sessions.models import Session
        from django.utils import timezone

        store = engine.SessionStore()
        rows = _in_batches_by_key(Session.objects.filter(expire_date__gt=timezone.now()), sorted(keys))
        return {row.session_key: store.decode(row.session_data) for row in rows}
    return {key: data for key in keys if (data := engine.SessionStore(key).load())}


def _in_batches_by_key(queryset: Any, keys: list[str]) -> list[Any]:
    found: list[Any] = []
    for start in range(0, len(keys), _BATCH):
        found.extend(queryset.filter(session_key__in=keys[start : start + _BATCH]))
    return found


def _session_is_users(data: dict[str, Any] | None, user: User) -> bool:
    """The session still logs this user in, with the password it was opened with."""
    if not data or str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())
