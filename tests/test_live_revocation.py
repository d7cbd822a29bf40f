"""Losing a credential or an access right takes effect on open sockets at once: revoked keys and deactivated users are closed with 4001, lost channels are unsubscribed."""
import asyncio
import time
from contextlib import AsyncExitStack
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from tests import factories
from tests.live import Browser, assert_next_is_sentinel_elsewhere, open_ready, recv_close, recv_json, request_reply, subscribe
from users import services as user_services
from users.models import User
from tests.support import POSITION, TIMESTAMP, error_frame, pong_frame, room_updated_data, subscribed_frame

ROOT_PASSWORD = "an operator password, long enough"
REVOCATION_DEADLINE = 2.0


@pytest.fixture
def world(transactional_db):
    ada, bob, carol, cy = (factories.make_user(name) for name in ("ada", "bob", "carol", "cy"))
    root = factories.make_user("root", is_staff=True, is_superuser=True)
    root.set_password(ROOT_PASSWORD)
    root.save()
    target_key, target_secret = user_services.api_key_create(user=ada, name="laptop")
    other_key, other_secret = user_services.api_key_create(user=ada, name="phone")
    return SimpleNamespace(
        ada=ada, bob=bob, carol=carol, cy=cy,
        target_key_id=target_key.pk, target=target_secret, other_key_id=other_key.pk, other=other_secret,
        bob_key=factories.make_key(bob), carol_key=factories.make_key(carol), cy_key=factories.make_key(cy),
        private=factories.make_room(bob, "private", is_private=True, members=(carol,)),
        public=factories.make_room(bob, "public", members=(carol,)),
    )


async def assert_revoked(ws, deadline: float = REVOCATION_DEADLINE) -> None:
    """UNAUTHORIZED, then close 4001, both within `deadline` seconds."""
    started = time.monotonic()
    assert await recv_json(ws, timeout=deadline) == error_frame("UNAUTHORIZED")
    assert await recv_close(ws, timeout=max(0.1, deadline - (time.monotonic() - started))) == 4001
    assert ws.close_code == 4001


async def assert_key_refused(server, key: str) -> None:
    """The key opens no socket (UNAUTHORIZED, then close 4001) and makes no REST call (401)."""
    async with server.connect(key) as ws:
        assert await recv_json(ws) == error_frame("UNAUTHORIZED")
        assert await recv_close(ws) == 4001
    assert (await server.arequest("GET", "/v1/users/me", key))[0] == 401


async def test_deleting_a_key_closes_every_socket_of_that_key_only(server, world):
    async with AsyncExitStack() as stack:
        doomed = [await open_ready(stack, server, world.target) for _ in range(3)]
        survivor = await open_ready(stack, server, world.other)
        bystander = await open_ready(stack, server, world.bob_key)
        await subscribe(doomed[0], f"room:{world.public.pk}")

        status, _ = await server.arequest("DELETE", f"/v1/api-keys/key_{world.target_key_id}", world.other)
        assert status == 204
        await asyncio.gather(*(assert_revoked(ws) for ws in doomed))
        for ws in (survivor, bystander):  # the pong proves it: a close, sent in the same pass, would come first
            assert await request_reply(ws, {"type": "ping", "ref": "still here"}) == pong_frame("still here")
        await assert_key_refused(server, world.target)

        # A key can revoke itself: its own socket closes too.
        status, _ = await server.arequest("DELETE", f"/v1/api-keys/{world.other_key_id}", world.other)
        assert status == 204
        await assert_revoked(survivor)
        assert await request_reply(bystander, {"type": "ping", "ref": 1}) == pong_frame(1)


async def test_revoking_through_the_admin_action(server, world):
    browser = await asyncio.to_thread(Browser(server).login, "root", ROOT_PASSWORD)
    async with AsyncExitStack() as stack:
        doomed = [await open_ready(stack, server, world.target) for _ in range(2)]
        survivor = await open_ready(stack, server, world.other)
        status, final_path, body = await asyncio.to_thread(
            browser.post,
            "/admin/users/apikey/",
            [("action", "revoke"), ("_selected_action", world.target_key_id), ("index", "0"), ("select_across", "0")],
        )
        assert (status, final_path) == (200, "/admin/users/apikey/"), body[:3000]
        assert "Revoked 1 API key" in body
        assert world.target not in body
        await asyncio.gather(*(assert_revoked(ws) for ws in doomed))
        assert await request_reply(survivor, {"type": "ping", "ref": "p"}) == pong_frame("p")
        await assert_key_refused(server, world.target)


async def test_deactivating_a_user_through_the_admin_closes_all_their_sockets(server, world):
    browser = await asyncio.to_thread(Browser(server).login, "root", ROOT_PASSWORD)
    async with AsyncExitStack() as stack:
        ada_sockets = [await open_ready(stack, server, key) for key in (world.target, world.target, world.other)]
        watcher = await open_ready(stack, server, world.bob_key)
        channel = f"user:{world.ada.pk}"
        assert (await subscribe(watcher, channel, "activity"))["presence"]["status"] == "online"

        status, final_path, body = await asyncio.to_thread(
            browser.post,
            f"/admin/users/user/{world.ada.pk}/change/",
            {
                "username": "ada", "first_name": "", "last_name": "", "email": "",
                "display_name": "Ada", "avatar_url": "", "_save": "Save",
                # is_active, is_staff and is_superuser unchecked: the user is deactivated
            },
        )
        assert (status, final_path) == (200, "/admin/users/user/"), body[:3000]
        await asyncio.gather(*(assert_revoked(ws) for ws in ada_sockets))
        assert await recv_json(watcher) == {
            "type": "user:offline", "channel": channel,
            "data": {"user_id": f"user_{world.ada.pk}", "status": "offline", "timestamp": TIMESTAMP},
        }
        assert await request_reply(watcher, {"type": "ping", "ref": "p"}) == pong_frame("p")
        for key in (world.target, world.other):
            await assert_key_refused(server, key)


def _deactivate_with_the_orm(user_id: int) -> None:
    try:
        user = User.objects.get(pk=user_id)
        user.is_active = False
        user.save()
    finally:
        connection.close()


async def test_deactivating_a_user_with_the_orm_closes_all_their_sockets(server, world):
    # Without Redis too: the revocation reaches the server process through the event log.
    async with AsyncExitStack() as stack:
        ada_sockets = [await open_ready(stack, server, key) for key in (world.target, world.other)]
        bystander = await open_ready(stack, server, world.bob_key)
        await asyncio.to_thread(_deactivate_with_the_orm, world.ada.pk)
        await asyncio.gather(*(assert_revoked(ws) for ws in ada_sockets))
        assert await request_reply(bystander, {"type": "ping", "ref": "p"}) == pong_frame("p")
        await assert_key_refused(server, world.other)


async def test_an_expiring_key_closes_its_socket_when_it_expires(server, world):
    status, created = await server.arequest(
        "POST", "/v1/api-keys", world.other, {"name": "short-lived", "expires_at": (timezone.now() + timedelta(seconds=1.5)).isoformat()}
    )
    assert status == 201
    async with AsyncExitStack() as stack:
        ws = await open_ready(stack, server, created["key"])
        survivor = await open_ready(stack, server, world.other)
        await assert_revoked(ws, deadline=4.0)
        assert await request_reply(survivor, {"type": "ping", "ref": "p"}) == pong_frame("p")
    await assert_key_refused(server, created["key"])


async def test_a_member_removed_from_a_private_room_is_unsubscribed(server, world):
    channel = f"room:{world.private.pk}"
    async with AsyncExitStack() as stack:
        owner = await open_ready(stack, server, world.bob_key)
        member = await open_ready(stack, server, world.carol_key)
        for ws in (owner, member):
            assert await subscribe(ws, channel, ref="1") == subscribed_frame(channel, ref="1")

        status, _ = await server.arequest("DELETE", f"/v1/rooms/{world.private.pk}/members/user_{world.carol.pk}", world.bob_key)
        assert status == 204
        status, room_view = await server.arequest("GET", f"/v1/rooms/{world.private.pk}", world.bob_key)
        assert room_view["member_count"] == 1
        assert await recv_json(owner) == {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(room_view)}
        # Not even the room:updated announcing the removal: she may no longer see the room.
        assert await recv_json(member, timeout=REVOCATION_DEADLINE) == {"type": "unsubscribed", "channel": channel, "reason": "access_revoked"}

        status, message = await server.arequest("POST", f"/v1/rooms/{world.private.pk}/messages", world.bob_key, {"content": "she is gone"})
        assert status == 201
        assert await recv_json(owner) == {"type": "message:new", "channel": channel, **POSITION, "data": message}
        await assert_next_is_sentinel_elsewhere(server, world.cy_key, member)
        assert await subscribe(member, channel, ref="2") == error_frame("FORBIDDEN", "2")
        assert await request_reply(member, {"type": "list_subscriptions", "ref": "l"}) == {"type": "subscriptions", "subscriptions": [], "ref": "l"}
        assert await request_reply(member, {"type": "ping", "ref": "p"}) == pong_frame("p")


async def test_leaving_a_public_room_keeps_the_subscription(server, world):
    """Anyone may watch a public room: being removed from it revokes nothing."""
    channel = f"room:{world.public.pk}"
    async with AsyncExitStack() as stack:
        member = await open_ready(stack, server, world.carol_key)
        await subscribe(member, channel)
        status, _ = await server.arequest("DELETE", f"/v1/rooms/{world.public.pk}/members/{world.carol.pk}", world.bob_key)
        assert status == 204
        status, room_view = await server.arequest("GET", f"/v1/rooms/{world.public.pk}", world.carol_key)
        assert await recv_json(member) == {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(room_view)}
        status, message = await server.arequest("POST", f"/v1/rooms/{world.public.pk}/messages", world.bob_key, {"content": "still public"})
        assert await recv_json(member) == {"type": "message:new", "channel": channel, **POSITION, "data": message}
        await assert_next_is_sentinel_elsewhere(server, world.bob_key, member, room=world.public.pk)


async def test_a_room_made_private_unsubscribes_non_members_only(server, world):
    channel = f"room:{world.public.pk}"
    async with AsyncExitStack() as stack:
        owner = await open_ready(stack, server, world.bob_key)
        member = await open_ready(stack, server, world.carol_key)
        outsider = await open_ready(stack, server, world.cy_key)
        for ws in (owner, member, outsider):
            await subscribe(ws, channel)
        status, room_view = await server.arequest("PATCH", f"/v1/rooms/{world.public.pk}", world.bob_key, {"is_private": True})
        assert status == 200 and room_view["is_private"] is True
        for ws in (owner, member):
            assert await recv_json(ws) == {"type": "room:updated", "channel": channel, **POSITION, "data": room_updated_data(room_view)}
        # The room is private from this change on: the outsider gets none of its events, this one included.
        assert await recv_json(outsider, timeout=REVOCATION_DEADLINE) == {"type": "unsubscribed", "channel": channel, "reason": "access_revoked"}

        status, message = await server.arequest("POST", f"/v1/rooms/{world.public.pk}/messages", world.carol_key, {"content": "members only now"})
        for ws in (owner, member):
            assert await recv_json(ws) == {"type": "message:new", "channel": channel, **POSITION, "data": message}
        await assert_next_is_sentinel_elsewhere(server, world.cy_key, outsider)
        assert await subscribe(outsider, channel, ref="again") == error_frame("FORBIDDEN", "again")
