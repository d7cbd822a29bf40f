"""One client, or one change made the quiet way, must never outlive the rules for everyone else.

- Group memberships of the process hub cannot be lost silently (a layer that expires them).
- A removal racing a subscribe never leaves the removed member subscribed.
- Credentials are re-validated for every open connection, whatever way they changed (even a
  `QuerySet.update()` that sends no signal), and rights are checked with the user as it is now.

The hub's periodic jobs are called directly (`hub._revalidate()`, `hub._reassert_groups()`): the
test asserts what one round does instead of waiting for the timer.
"""
import asyncio
import time
from datetime import timedelta

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from realtime import authorization
from realtime.hub import existing_hub
from realtime.layers import EmbeddedChannelLayer
from rooms import services as room_services
from rooms.models import Membership
from tests import factories
from tests.worlds import Cast, cast
from tests.realtime_client import connected, opened, sync
from tests.support import error_frame, subscribed_frame
from users.models import ApiKey, User

pytestmark = pytest.mark.django_db(transaction=True)

SITE_ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture
async def w() -> Cast:
    return await sync(cast)()


@pytest.fixture(autouse=True)
def _allowed_origins(settings):
    settings.RETROCHAT_ALLOWED_ORIGINS = ["http://localhost:8000"]


async def next_message_content(ws) -> str:
    frame = await ws.receive()
    assert frame["type"] == "message:new", frame
    return frame["data"]["content"]


# --- memberships never lapse ---------------------------------------------------------------------


async def test_channels_own_in_memory_layer_drops_a_channel_from_every_group_when_a_message_expires():
    layer = InMemoryChannelLayer(expiry=0)  # why the embedded default does not use it as it is
    await layer.group_add("rc.control", "hub!1")
    await layer.send("hub!1", {"type": "x"})
    await asyncio.sleep(0.01)
    await layer.group_send("rc.room.1", {"type": "y"})  # any later send cleans up expired messages
    assert "hub!1" not in layer.groups.get("rc.control", {})


async def test_the_embedded_layer_keeps_memberships_when_a_message_expires():
    layer = EmbeddedChannelLayer(expiry=0)
    await layer.group_add("rc.control", "hub!1")
    await layer.send("hub!1", {"type": "x"})
    await asyncio.sleep(0.01)
    await layer.group_send("rc.room.1", {"type": "y"})
    assert "hub!1" in layer.groups["rc.control"]


async def test_the_hub_joins_every_followed_group_again(w, settings):
    settings.RETROCHAT_LOG_POLL_SECONDS = 3600  # no catch-up from the log: only the group can deliver
    channel = f"room:{w.room.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "message")
        hub = existing_hub()
        for group in ("rc.control", f"rc.room.{w.room.pk}"):  # as if the layer had expired them
            await get_channel_layer().group_discard(group, hub.channel_name)
        await hub._reassert_groups()
        await sync(factories.make_message)(w.ada, room=w.room, content="through the group")
        assert await next_message_content(ws) == "through the group"


async def test_an_event_whose_group_membership_was_lost_still_arrives_from_the_log(w):
    channel = f"room:{w.room.pk}"
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(channel, "message")
        hub = existing_hub()
        await get_channel_layer().group_discard(f"rc.room.{w.room.pk}", hub.channel_name)
        await sync(factories.make_message)(w.ada, room=w.room, content="through the log")
        frame = await ws.communicator.receive_json_from(timeout=5)  # within two catch-up rounds
        assert (frame["type"], frame["data"]["content"], frame["offset"]) == ("message:new", "through the log", frame["offset"])


# --- a removal racing a subscribe ----------------------------------------------------------------


async def test_a_removal_between_the_access_check_and_the_subscription_never_leaves_the_member_subscribed(w, monkeypatch):
    other = await sync(factories.make_room)(w.ada, "other")  # its events are the sentinel that proves what did not arrive
    private, sentinel = f"room:{w.private.pk}", f"room:{other.pk}"
    checked = authorization.prepare_subscription

    def check_then_remove(user_id, channel, *args):
        prepared = checked(user_id, channel, *args)
        if str(channel) == private and Membership.objects.filter(room=w.private, user=w.bob).exists():
            # The access check said yes; the removal commits before the subscription is installed.
            room_services.membership_remove(membership=Membership.objects.get(room=w.private, user=w.bob), reason="removed")
        return prepared

    monkeypatch.setattr(authorization, "prepare_subscription", check_then_remove)
    async with connected(w.key(w.bob)) as ws:
        await ws.subscribe(sentinel, "message")
        reply = await ws.request({"type": "subscribe", "channel": private, "event": "message", "ref": "p"})
        if reply["type"] == "subscribed":  # the re-check after install removed it
            assert reply == subscribed_frame(private, "message", ref="p")
            assert await ws.receive() == {"type": "unsubscribed", "channel": private, "reason": "access_revoked"}
        else:  # the access change arrived during the check: checked again, refused
            assert reply == error_frame("FORBIDDEN", "p")
        await sync(factories.make_message)(w.ada, room=w.private, content="members only")
        await sync(factories.make_message)(w.ada, room=other, content="sentinel")
        assert await next_message_content(ws) == "sentinel"
        assert await ws.request({"type": "list_subscriptions"}) == {
            "type": "subscriptions", "subscriptions": [{"channel": sentinel, "events": ["message"]}]
        }


# --- rights as they are now ----------------------------------------------------------------------


async def test_a_demoted_staff_user_cannot_subscribe_to_private_rooms_on_an_open_socket(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.key(w.root)) as ws:
        await ws.subscribe(channel, "message")
        await sync(User.objects.filter(pk=w.root.pk).update)(is_staff=False)
        await ws.request({"type": "unsubscribe", "channel": channel})
        assert await ws.request({"type": "subscribe", "channel": channel, "ref": "again"}) == error_frame("FORBIDDEN", "again")


# --- credentials re-validated --------------------------------------------------------------------


async def revalidated_close(ws) -> int:
    """Run one re-validation round; the connection must get UNAUTHORIZED and close 4001."""
    await existing_hub()._revalidate()
    assert await ws.receive() == error_frame("UNAUTHORIZED")
    return await ws.close_code()


async def still_open_after_revalidation(ws) -> None:
    await existing_hub()._revalidate()
    await ws.assert_alive()


async def test_a_user_deactivated_without_signals_is_closed(w):
    async with connected(w.key(w.bob)) as ws:
        await sync(User.objects.filter(pk=w.bob.pk).update)(is_active=False)
        assert await revalidated_close(ws) == 4001


async def test_a_key_revoked_without_signals_is_closed(w):
    async with connected(w.key(w.bob)) as ws, connected(w.key(w.ada)) as bystander:
        await sync(ApiKey.objects.filter(user=w.bob).update)(revoked_at=timezone.now())
        assert await revalidated_close(ws) == 4001
        await bystander.assert_alive()


async def test_a_key_whose_expiry_moved_into_the_past_is_closed(w):
    async with connected(w.key(w.bob)) as ws:
        await sync(ApiKey.objects.filter(user=w.bob).update)(expires_at=timezone.now() - timedelta(seconds=1))
        assert await revalidated_close(ws) == 4001


async def test_valid_credentials_stay_open(w):
    async with connected(w.key(w.bob)) as ws:
        await still_open_after_revalidation(ws)


def _session_cookie(user: User) -> tuple[tuple[bytes, bytes], str]:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return (b"cookie", f"sessionid={session.session_key}".encode()), session.session_key


@pytest.mark.parametrize("ending", ["logout", "expiry", "password change"])
async def test_a_session_socket_closes_when_its_session_ends(w, ending):
    cookie, session_key = await sync(_session_cookie)(w.bob)
    async with opened([cookie, SITE_ORIGIN]) as ws:
        assert (await ws.open())[0]
        assert (await ws.receive())["type"] == "connected"
        if ending == "logout":
            await sync(Session.objects.filter(session_key=session_key).delete)()
        elif ending == "expiry":
            await sync(Session.objects.filter(session_key=session_key).update)(expire_date=timezone.now())
        else:
            def change_password() -> None:
                user = User.objects.get(pk=w.bob.pk)
                user.set_password("a new secret 123")
                user.save()

            await sync(change_password)()
        assert await revalidated_close(ws) == 4001


async def test_a_live_session_socket_stays_open(w):
    cookie, _ = await sync(_session_cookie)(w.bob)
    async with opened([cookie, SITE_ORIGIN]) as ws:
        assert (await ws.open())[0]
        assert (await ws.receive())["type"] == "connected"
        await still_open_after_revalidation(ws)


async def test_re_validation_runs_by_itself(w, settings):
    settings.RETROCHAT_REVALIDATE_SECONDS = 0.05
    async with connected(w.key(w.bob)) as ws:
        await sync(User.objects.filter(pk=w.bob.pk).update)(is_active=False)
        deadline = time.monotonic() + 5
        frame = await ws.communicator.receive_json_from(timeout=deadline - time.monotonic())
        assert frame == error_frame("UNAUTHORIZED")
    from realtime.credentials import verified_keys

    assert verified_keys.get(w.key(w.bob)) is None  # and a new connect checks the database again


# --- the verified-key cache -----------------------------------------------------------------------


async def test_a_key_is_verified_once_then_taken_from_the_cache(w):
    from realtime.credentials import verified_keys

    async with connected(w.key(w.bob)):
        pass
    key = await sync(ApiKey.objects.get)(user=w.bob)
    await sync(ApiKey.objects.filter(pk=key.pk).update)(revoked_at=timezone.now())  # no signal: still cached…
    assert verified_keys.get(w.key(w.bob)) is not None
    verified_keys.forget_key(key.pk)  # …until the process hears of it (RevokeKey, applied by the hub)
    assert verified_keys.get(w.key(w.bob)) is None


async def test_revoking_a_key_forgets_it_on_every_process(w):
    from realtime.credentials import verified_keys
    from users import services as user_services

    async with connected(w.key(w.bob)) as ws:
        key = await sync(ApiKey.objects.get)(user=w.bob)
        await sync(user_services.api_key_revoke)(api_key=key)
        assert await ws.receive() == error_frame("UNAUTHORIZED")  # the hub applied RevokeKey…
    assert verified_keys.get(w.key(w.bob)) is None  # …and forgot the key


def test_a_key_verified_while_a_revocation_is_applied_is_not_remembered(db):
    """The database check of a connect began before the revocation committed (the key was valid),
    and this process applied the revocation before the check answered: the answer may not be
    cached, or the revoked key would connect from the cache for the TTL."""
    from realtime.credentials import VerifiedKeys
    from users import keys

    cache, ada = VerifiedKeys(), factories.make_user("ada")
    secret = factories.make_key(ada)
    seen = cache.forgets  # the check begins
    api_key = keys.verify(secret)
    assert api_key is not None
    cache.forget_user(ada.pk)  # RevokeUser applied by the hub while the check was in flight
    cache.put(secret, api_key, seen=seen)
    assert cache.get(secret) is None
    cache.put(secret, api_key, seen=cache.forgets)  # a check that began after it is remembered
    assert cache.get(secret) is api_key


async def test_a_connect_whose_key_is_revoked_before_it_registers_is_closed(w, monkeypatch):
    """The key was valid when the connect checked it; the revocation was applied (the hub closed the
    key's sockets) before the new connection registered with the hub: it may not stay open."""
    from realtime import presence
    from tests.realtime_client import bearer
    from users import services as user_services

    backend = presence.backend()
    open_entry, paused, go = backend.open, asyncio.Event(), asyncio.Event()

    async def pausing_open(*args, **kwargs):
        if not go.is_set():
            paused.set()
            await go.wait()
        return await open_entry(*args, **kwargs)

    async with connected(w.key(w.bob)) as first:  # the hub runs and has the key's other socket
        monkeypatch.setattr(backend, "open", pausing_open)
        async with opened([bearer(w.key(w.bob))]) as second:
            assert (await second.open())[0]  # authenticated and accepted, not yet registered
            await asyncio.wait_for(paused.wait(), 2)
            key = await sync(ApiKey.objects.get)(user=w.bob)
            await sync(user_services.api_key_revoke)(api_key=key)
            assert await first.receive() == error_frame("UNAUTHORIZED")  # the hub applied RevokeKey
            go.set()
            assert (await second.receive())["type"] == "connected"  # as if revoked just after it opened
            assert await second.receive() == error_frame("UNAUTHORIZED")
            assert await second.close_code() == 4001


# --- big replays are no slow consumers ----------------------------------------------------------


async def _missed_while_away(w: Cast, count: int) -> dict:
    async with connected(w.key(w.bob)) as ws:
        position = await ws.request({"type": "subscribe", "channel": f"room:{w.room.pk}", "event": "message"})
    for n in range(count):
        await sync(factories.make_message)(w.ada, room=w.room, content=f"{n:04d}" + "x" * 3996)
    return {"offset": position["offset"], "epoch": position["epoch"]}


async def test_a_replay_larger_than_the_byte_limit_reaches_a_client_that_reads(w, settings):
    settings.RETROCHAT_MAX_PENDING_BYTES = 20_000  # the replay below is 6 frames of about 4.2 KB
    since = await _missed_while_away(w, 6)
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request({"type": "subscribe", "channel": f"room:{w.room.pk}", "event": "message", "since": since})
        assert reply["recovered"] is True
        contents = [(await ws.receive())["data"]["content"][:4] for _ in range(6)]
        assert contents == ["0000", "0001", "0002", "0003", "0004", "0005"]
        await ws.assert_alive()


async def test_a_replay_over_twice_the_byte_limit_is_not_recovered_instead_of_closing_the_client(w, settings):
    settings.RETROCHAT_MAX_PENDING_BYTES = 10_000
    since = await _missed_while_away(w, 6)
    async with connected(w.key(w.bob)) as ws:
        reply = await ws.request({"type": "subscribe", "channel": f"room:{w.room.pk}", "event": "message", "since": since})
        assert reply["recovered"] is False and reply["offset"] == since["offset"] + 6
        await ws.assert_alive()
