"""Who may connect and who may subscribe to what, over a real server process."""
import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from websockets.asyncio.client import connect

from tests import factories
from tests.live import Browser, assert_next_is_sentinel_elsewhere, open_ready, recv_close, recv_json, subscribe
from users import services as user_services
from tests.support import POSITION, TEXT, error_frame, subscribed_frame

STAFF_PASSWORD = "a staff password that is long enough"
MISSING = 999_999_999


@pytest.fixture
def people(transactional_db):
    """owner and member share a public room, a private room and a DM; outsider is in none; staff is staff."""
    owner, member, outsider = factories.make_user("owner"), factories.make_user("member"), factories.make_user("outsider")
    staff = factories.make_user("staff", is_staff=True)
    staff.set_password(STAFF_PASSWORD)
    staff.save()
    public = factories.make_room(owner, "lobby", members=(member,))
    private = factories.make_room(owner, "backstage", is_private=True, members=(member,))
    conversation = factories.make_conversation(owner, member)

    revoked, revoked_secret = user_services.api_key_create(user=outsider, name="revoked")
    user_services.api_key_revoke(api_key=revoked)
    _, expired_secret = user_services.api_key_create(user=outsider, name="expired", expires_at=timezone.now() - timedelta(seconds=1))
    inactive = factories.make_user("gone")
    inactive_secret = factories.make_key(inactive)
    inactive.is_active = False
    inactive.save()
    return SimpleNamespace(
        owner=owner, member=member, outsider=outsider, staff=staff,
        keys={name: factories.make_key(user) for name, user in
              [("owner", owner), ("member", member), ("outsider", outsider), ("staff", staff)]},
        public=public, private=private, conversation=conversation,
        revoked_secret=revoked_secret, expired_secret=expired_secret, inactive_secret=inactive_secret,
    )


ONLINE = {"status": "online", "last_seen_at": None}


def matrix(p: SimpleNamespace) -> list[tuple[str, str, str, dict[str, dict]]]:
    """(channel as sent, event, canonical channel, {who: expected reply without ref})."""
    everyone = ("owner", "member", "outsider", "staff")
    public, private, conv = f"room:{p.public.pk}", f"room:{p.private.pk}", f"conversation:{p.conversation.pk}"
    owner_user = f"user:{p.owner.pk}"

    def ok(channel: str, event: str, presence: dict | None = None) -> dict:
        return subscribed_frame(channel, event, ref="?", **({} if presence is None else {"presence": presence}))

    forbidden, missing = error_frame("FORBIDDEN", "?"), error_frame("CHANNEL_NOT_FOUND", "?")
    rows = [
        (public, "*", public, {w: ok(public, "*") for w in everyone}),
        (public, "message", public, {w: ok(public, "message") for w in everyone}),
        (f"room:room_{p.public.pk}", "room", public, {w: ok(public, "room") for w in everyone}),
        (private, "*", private, {"owner": ok(private, "*"), "member": ok(private, "*"), "outsider": forbidden, "staff": ok(private, "*")}),
        (private, "message:new", private, {"owner": ok(private, "message:new"), "member": ok(private, "message:new"),
                                           "outsider": forbidden, "staff": ok(private, "message:new")}),
        (f"room:room_{p.private.pk}", "room", private, {"owner": ok(private, "room"), "member": ok(private, "room"),
                                                        "outsider": forbidden, "staff": ok(private, "room")}),
        (conv, "*", conv, {"owner": ok(conv, "*"), "member": ok(conv, "*"), "outsider": forbidden, "staff": forbidden}),
        (f"conversation:conv_{p.conversation.pk}", "message:deleted", conv,
         {"owner": ok(conv, "message:deleted"), "member": ok(conv, "message:deleted"), "outsider": forbidden, "staff": forbidden}),
        (owner_user, "activity", owner_user, {w: ok(owner_user, "activity", ONLINE) for w in everyone}),
        (f"user:user_{p.owner.pk}", "user:offline", owner_user, {w: ok(owner_user, "user:offline", ONLINE) for w in everyone}),
        # `*` is every event the subscriber may see: the room feed for its owner, activity for all.
        (owner_user, "*", owner_user, {w: ok(owner_user, "*", ONLINE) for w in everyone}),
        (owner_user, "room", owner_user, {"owner": ok(owner_user, "room"), "member": forbidden, "outsider": forbidden, "staff": forbidden}),
        (owner_user, "room:created", owner_user, {"owner": ok(owner_user, "room:created"), "member": forbidden,
                                                  "outsider": forbidden, "staff": forbidden}),
        (f"room:{MISSING}", "*", "", {w: missing for w in everyone}),
        (f"conversation:{MISSING}", "*", "", {w: missing for w in everyone}),
        (f"user:{MISSING}", "activity", "", {w: missing for w in everyone}),
    ]
    return rows


async def test_subscription_matrix(server, people):
    rows = matrix(people)
    async with AsyncExitStack() as stack:
        sockets = {who: await open_ready(stack, server, key) for who, key in people.keys.items()}
        for who, ws in sockets.items():
            for n, (channel, event, _, expected_by_user) in enumerate(rows):
                ref = f"{who}-{n}"
                expected = {**expected_by_user[who], "ref": ref}
                assert await subscribe(ws, channel, event, ref=ref) == expected, (who, channel, event)
            # Everyone may subscribe to their own room feed.
            own = f"user:{getattr(people, who).pk}"
            assert await subscribe(ws, own, "room", ref="own") == subscribed_frame(own, "room", ref="own")
        await assert_next_is_sentinel_elsewhere(server, people.keys["member"], *sockets.values(), room=people.public.pk)


async def test_private_room_and_dm_messages_reach_only_those_allowed(server, people):
    private, conv = f"room:{people.private.pk}", f"conversation:{people.conversation.pk}"
    owner_feed = f"user:{people.owner.pk}"
    async with AsyncExitStack() as stack:
        ws = {who: await open_ready(stack, server, key) for who, key in people.keys.items()}
        for who in ("owner", "member", "staff"):
            assert await subscribe(ws[who], private, ref="p") == subscribed_frame(private, "*", ref="p")
        assert await subscribe(ws["outsider"], private, ref="p") == error_frame("FORBIDDEN", "p")
        for who in ("owner", "member"):
            assert await subscribe(ws[who], conv, ref="c") == subscribed_frame(conv, "*", ref="c")
        for who in ("outsider", "staff"):
            assert await subscribe(ws[who], conv, ref="c") == error_frame("FORBIDDEN", "c")
        # Everyone follows the owner with `*`; only the owner is granted the room feed.
        for who in ("owner", "member", "outsider", "staff"):
            assert await subscribe(ws[who], owner_feed, ref="f") == subscribed_frame(owner_feed, "*", ref="f", presence=ONLINE)

        status, message = await server.arequest("POST", f"/v1/rooms/{people.private.pk}/messages", people.keys["member"], {"content": "members only"})
        assert status == 201
        for who in ("owner", "member", "staff"):
            assert await recv_json(ws[who]) == {"type": "message:new", "channel": private, **POSITION, "data": message}

        status, dm = await server.arequest("POST", f"/v1/conversations/{people.conversation.pk}/messages", people.keys["owner"], {"content": "just us"})
        assert status == 201
        for who in ("owner", "member"):
            assert await recv_json(ws[who]) == {"type": "message:new", "channel": conv, **POSITION, "data": dm}

        status, room = await server.arequest("POST", "/v1/rooms", people.keys["owner"], {"name": "new and private", "is_private": True})
        assert status == 201
        assert await recv_json(ws["owner"]) == {"type": "room:created", "channel": owner_feed, **POSITION, "data": room}

        # The outsider also watches the public room: a message there does reach them.
        assert await subscribe(ws["outsider"], f"room:{people.public.pk}", ref="pub") == subscribed_frame(f"room:{people.public.pk}", "*", ref="pub")
        status, public_message = await server.arequest("POST", f"/v1/rooms/{people.public.pk}/messages", people.keys["member"], {"content": "hi all"})
        assert await recv_json(ws["outsider"]) == {"type": "message:new", "channel": f"room:{people.public.pk}", **POSITION, "data": public_message}
        await assert_next_is_sentinel_elsewhere(server, people.keys["member"], *ws.values(), room=people.public.pk)


# --- handshake ---------------------------------------------------------------------------------
async def test_authorization_header(server, people):
    async with server.connect(people.keys["member"]) as first, server.connect(people.keys["member"]) as second:
        frames = [await recv_json(first), await recv_json(second)]
        expected = {
            "type": "connected", "connection_id": TEXT, "user_id": f"user_{people.member.pk}", "heartbeat_interval": 25,
            "limits": {"max_subscriptions": 100, "max_frame_bytes": 65536, "rate_per_second": 20, "rate_burst": 40},
        }
        assert frames == [expected, expected]
        assert frames[0]["connection_id"] != frames[1]["connection_id"]
        assert first.subprotocol is None


async def test_subprotocol_pair_selects_retrochat_and_never_echoes_the_key(server, people):
    key = people.keys["member"]
    async with server.connect(None, subprotocols=["retrochat.v1", f"bearer.{key}"]) as ws:
        assert ws.subprotocol == "retrochat.v1"
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["retrochat.v1"]
        raw_headers = "\n".join(f"{name}: {value}" for name, value in ws.response.headers.raw_items())
        assert key not in raw_headers and key[3:] not in raw_headers
        assert (await recv_json(ws))["user_id"] == f"user_{people.member.pk}"
        assert (await subscribe(ws, f"room:{people.private.pk}"))["type"] == "subscribed"
    assert key not in server.log()


def unauthorized_cases(people) -> list[tuple[str, dict]]:
    unknown = "rc_" + "A" * 43
    return [
        ("no credentials", {}),
        ("unknown key", {"headers": {"Authorization": f"Bearer {unknown}"}}),
        ("malformed key", {"headers": {"Authorization": "Bearer hello"}}),
        ("empty bearer", {"headers": {"Authorization": "Bearer"}}),
        ("not a bearer scheme", {"headers": {"Authorization": f"Basic {people.keys['member']}"}}),
        ("revoked key", {"headers": {"Authorization": f"Bearer {people.revoked_secret}"}}),
        ("expired key", {"headers": {"Authorization": f"Bearer {people.expired_secret}"}}),
        ("deactivated user", {"headers": {"Authorization": f"Bearer {people.inactive_secret}"}}),
        ("bad key in the subprotocol pair", {"subprotocols": ["retrochat.v1", f"bearer.{unknown}"]}),
        ("retrochat.v1 without a key", {"subprotocols": ["retrochat.v1"]}),
        ("bearer subprotocol without retrochat.v1", {"subprotocols": [f"bearer.{people.keys['member']}"]}),
    ]


async def test_bad_credentials_get_one_answer_then_4001(server, people):
    answers = []
    for name, kwargs in unauthorized_cases(people):
        headers = kwargs.get("headers", {})
        async with connect(server.ws_url, additional_headers=headers, subprotocols=kwargs.get("subprotocols"), open_timeout=10) as ws:
            frame = await recv_json(ws)
            assert frame == error_frame("UNAUTHORIZED"), name
            assert await recv_close(ws) == 4001, name
            assert ws.close_code == 4001, name
            answers.append(frame)
    assert all(answer == answers[0] for answer in answers)  # the same words for every failure: no oracle
    log = server.log()
    for secret in (people.revoked_secret, people.expired_secret, people.inactive_secret, people.keys["member"]):
        assert secret not in log


@pytest.mark.parametrize("param", ["key", "api_key", "token", "access_token", "bearer"])
async def test_a_key_in_the_query_string_is_not_accepted(server, people, param):
    key = people.keys["member"]
    async with connect(f"{server.ws_url}?{param}={key}", open_timeout=10) as ws:
        assert await recv_json(ws) == error_frame("UNAUTHORIZED")
        assert await recv_close(ws) == 4001
    assert key not in server.log() and key[3:] not in server.log()  # not even in the access log


async def test_session_cookie_needs_a_same_site_origin(server, people):
    browser = await asyncio.to_thread(Browser(server).login, "staff", STAFF_PASSWORD)
    cookie = f"sessionid={browser.cookie('sessionid')}"
    for origin in (server.http_url, f"http://localhost:{server.port}"):
        async with server.connect(None, headers={"Cookie": cookie, "Origin": origin}) as ws:
            assert (await recv_json(ws))["user_id"] == f"user_{people.staff.pk}", origin
            assert await subscribe(ws, f"room:{people.private.pk}", ref="1") == subscribed_frame(f"room:{people.private.pk}", "*", ref="1")
    foreign = [{"Origin": "http://evil.example"}, {"Origin": f"http://127.0.0.1.evil.example:{server.port}"},
               {"Origin": f"https://127.0.0.1:{server.port}"}, {"Origin": "http://localhost:9999"},
               {"Origin": "null"}, {}]
    for extra in foreign:
        async with server.connect(None, headers={"Cookie": cookie, **extra}) as ws:
            assert await recv_json(ws) == error_frame("FORBIDDEN_ORIGIN"), extra
            assert await recv_close(ws) == 4003, extra
    # Without a session, the same-site Origin alone authenticates nobody.
    async with server.connect(None, headers={"Origin": server.http_url}) as ws:
        assert await recv_json(ws) == error_frame("UNAUTHORIZED")
        assert await recv_close(ws) == 4001
