"""Room presence: one `activity` subscription on a room tells who of its members is online now
(`subscribed.presence.online`) and then each member's comings and goings (`user:online`,
`user:offline`) and profile changes (`user:updated`) on the room's own channel.

The cast: ada owns the room, bob is a member, cy is not (until a test adds her); dee is the watcher,
a member who stays connected.
"""
from dataclasses import dataclass

import pytest

from rooms import services as room_services
from rooms.models import Membership, Room
from tests import factories
from tests.realtime_client import connected, sync
from tests.support import EPOCH, OFFSET, POSITION, TIMESTAMP, error_frame, presence_frame, subscribed_frame
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    ada: User
    bob: User
    cy: User
    dee: User
    room: Room
    private: Room
    keys: dict[str, str]

    @property
    def channel(self) -> str:
        return f"room:{self.room.pk}"


def _build() -> World:
    ada, bob, cy, dee = (factories.make_user(name) for name in ("ada", "bob", "cy", "dee"))
    room = factories.make_room(ada, "lobby", members=(bob, dee))
    private = factories.make_room(ada, "secret", is_private=True, members=(dee,))
    keys = {user.username: factories.make_key(user) for user in (ada, bob, cy, dee)}
    return World(ada, bob, cy, dee, room, private, keys)


@pytest.fixture
async def w() -> World:
    return await sync(_build)()


async def watch(ws, w: World) -> dict:
    return await ws.request({"type": "subscribe", "channel": w.channel, "event": "activity", "ref": "p"})


async def test_subscribed_lists_the_members_online_now(w):
    async with connected(w.keys["ada"]), connected(w.keys["cy"]), connected(w.keys["dee"]) as dee:
        assert await watch(dee, w) == {
            "type": "subscribed", "channel": w.channel, "event": "activity", **POSITION,
            # ada and dee are members and connected; bob is offline; cy is connected but no member.
            "presence": {"online": sorted([f"user_{w.ada.pk}", f"user_{w.dee.pk}"], key=lambda i: int(i[5:]))},
            "ref": "p",
        }


async def test_a_member_coming_and_going_is_announced_on_the_room(w):
    async with connected(w.keys["dee"]) as dee:
        await watch(dee, w)
        async with connected(w.keys["bob"]):
            assert await dee.receive() == presence_frame(w.bob.pk, "online", w.channel)
            async with connected(w.keys["bob"]):  # a second tab: no transition
                pass
        assert await dee.receive() == presence_frame(w.bob.pk, "offline", w.channel)
        # Every connection has finished closing, presence transitions included: a sentinel can prove it.
        await dee.assert_next_is_sentinel_elsewhere(w.ada)


async def test_a_non_members_presence_is_not_announced_on_the_room(w):
    async with connected(w.keys["dee"]) as dee:
        await watch(dee, w)
        async with connected(w.keys["cy"]):
            pass
        async with connected(w.keys["bob"]):  # the sentinel: the next frame is bob's, not cy's
            assert await dee.receive() == presence_frame(w.bob.pk, "online", w.channel)


async def test_an_online_user_joining_or_leaving_enters_or_leaves_the_set(w):
    async with connected(w.keys["dee"]) as dee, connected(w.keys["cy"]):
        await watch(dee, w)
        await sync(room_services.membership_add)(room=w.room, user=w.cy)
        assert await dee.receive() == presence_frame(w.cy.pk, "online", w.channel)
        membership = await sync(Membership.objects.get)(room=w.room, user=w.cy)
        await sync(room_services.membership_remove)(membership=membership, reason="left")
        assert await dee.receive() == presence_frame(w.cy.pk, "offline", w.channel)


async def test_a_members_profile_change_is_user_updated_on_the_room_with_its_position(w):
    async with connected(w.keys["dee"]) as dee:
        await watch(dee, w)

        def rename() -> None:
            user = User.objects.get(pk=w.bob.pk)
            user.display_name = "Robert"
            user.save()

        await sync(rename)()
        frame = await dee.receive()
        assert frame == {
            "type": "user:updated", "channel": w.channel, "offset": OFFSET, "epoch": EPOCH,
            "data": {"user_id": f"user_{w.bob.pk}", "status": "offline", "timestamp": TIMESTAMP,
                     "username": "bob", "display_name": "Robert", "avatar_url": "", "last_seen_at": None},
        }


async def test_star_does_not_include_the_rooms_activity(w):
    async with connected(w.keys["dee"]) as dee:
        reply = await dee.request({"type": "subscribe", "channel": w.channel, "ref": "all"})
        assert reply == subscribed_frame(w.channel, ref="all")
        async with connected(w.keys["bob"]):
            pass
        await sync(factories.make_message)(w.ada, room=w.room, content="sentinel")
        assert (await dee.receive())["type"] == "message:new"


async def test_exact_presence_types_filter_the_rooms_activity(w):
    async with connected(w.keys["dee"]) as dee:
        await dee.subscribe(w.channel, "user:offline")
        async with connected(w.keys["bob"]):
            pass
        assert await dee.receive() == presence_frame(w.bob.pk, "offline", w.channel)


async def test_only_those_who_may_see_a_private_room_may_watch_its_activity(w):
    channel = f"room:{w.private.pk}"
    async with connected(w.keys["cy"]) as cy:
        assert await cy.request({"type": "subscribe", "channel": channel, "event": "activity", "ref": "x"}) == error_frame("FORBIDDEN", "x")
