"""API key format, hashing and verification.

A key is `rc_` + 43 URL-safe characters from `secrets` (256 bits). The database keeps the first
11 characters as a lookup prefix and a SHA-256 digest of the whole key: keys are random, so a fast
hash is enough and a slow password hash would only cost every request time. Every failure path
hashes and compares once, in constant time, so timing does not tell a malformed key from an
unknown, expired or revoked one.
"""
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from users.models import ApiKey

KEY_PREFIX = "rc_"
LOOKUP_PREFIX_LENGTH = 11  # "rc_" + 8 random characters
_KEY_RE = re.compile(r"rc_[A-Za-z0-9_-]{32,128}", re.ASCII)
# `last_used_at` is written at most once a minute per key, so authentication stays read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_DUMMY_DIGEST = hashlib.sha256(b"no key has this digest").hexdigest()


@dataclass(frozen=True)
class NewKey:
    secret: str
    prefix: str
    hashed_key: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def generate() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=secret[:LOOKUP_PREFIX_LENGTH], hashed_key=digest(secret))


def looks_like_key(text: str) -> bool:
    return bool(_KEY_RE.fullmatch(text))


def verify(secret: str) -> ApiKey | None:
    """The usable key for `secret` (with its user loaded), or None. Touches `last_used_at`."""
    well_formed = looks_like_key(secret)
    candidate_digest = digest(secret) if well_formed else _DUMMY_DIGEST
    candidates: list[ApiKey | None] = (
        list(ApiKey.objects.select_related("user").filter(prefix=secret[:LOOKUP_PREFIX_LENGTH]).order_by())
        if well_formed
        else []
    )
    match = None
    for candidate in candidates or [None]:
        stored = candidate.hashed_key if candidate else _DUMMY_DIGEST
        if hmac.compare_digest(stored, candidate_digest) and candidate is not None:
            match = candidate
    if match is None or not match.is_usable or not match.user.is_active:
        return None
    _touch(match)
    return match


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        # update(): no signal and no full save; nothing watches this column.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
