"""Short-lived connection tokens for browsers (`POST /v1/realtime/token`).

A page never holds a long-lived API key: it asks for a token (session + CSRF) just before each
(re)connect and offers it as the subprotocol `bearer.<token>`. A token is a signed payload
(django.core.signing, its own salt) naming the user, its expiry, and a value derived from the
user's session-auth hash, so a password change invalidates every token already issued, and a
deactivated user's tokens fail the active check. Tokens are not stored: nothing to revoke one by
one; they expire after RETROCHAT_TOKEN_TTL seconds (default 300).

The separator is `.`, not signing's default `:`, because a subprotocol must be an HTTP token and
browsers refuse `:` in one.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from users.models import User

SALT = "retrochat.realtime.token"
_SIGNER_SEPARATOR = "."


@dataclass(frozen=True)
class ConnectionToken:
    token: str
    expires_at: datetime


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=_SIGNER_SEPARATOR)


def user_binding(user: User) -> str:
    """Changes with the user's password (as sessions do); reveals nothing about it."""
    return salted_hmac(SALT, user.get_session_auth_hash(), algorithm="sha256").hexdigest()[:32]


def token_issue(*, user: User) -> ConnectionToken:
    expires_at = timezone.now() + timedelta(seconds=settings.RETROCHAT_TOKEN_TTL)
    payload = {"u": user.pk, "b": user_binding(user), "x": int(expires_at.timestamp())}
    return ConnectionToken(token=_signer().sign_object(payload), expires_at=expires_at.replace(microsecond=0))


def token_user(token: str) -> User | None:
    """The active user a valid, unexpired token names; None for anything else (one answer for all)."""
    try:
        payload = _signer().unsign_object(token)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("x", 0) <= timezone.now().timestamp():
        return None
    # django-stubs refuses None for `pk`; Django reads it as IS NULL, which matches no user (wanted here).
    user = User.objects.filter(pk=payload.get("u"), is_active=True).first()  # type: ignore[misc]
    if user is None or not constant_time_compare(str(payload.get("b")), user_binding(user)):
        return None
    return user
