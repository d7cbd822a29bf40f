"""The web app in a real browser (Playwright driving Debian's chromium) against a real server.

Two users sign in at /login/ in two browser contexts and open the same room: one posts, edits and
deletes, the other sees each change live; the server restarts, a third party posts right after,
and the message arrives, nothing lost, while the connection indicator goes through reconnecting
back to connected; and each sees the other in the room's online list. Then a direct conversation:
one starts it by username (after the errors for a name and an id that do not exist), it appears
in the other's list by itself (`conversation:created` on their own feed), and messages, an edit and
a deletion arrive live both ways.

chromium is a test service: when RETROCHAT_TEST_SERVICES names `browser` (as .ci/run does) a
missing chromium fails the run; elsewhere the test is skipped.
"""
import asyncio
import json
import os
import re
import shutil

import pytest

from tests import factories
from tests.live import LiveServer, recv_json

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
PASSWORD = "a long test password 7"
TIMEOUT_MS = 15000
# After a restart the page's client reconnects with exponential backoff and full jitter (windows of
# 1, 2, 4, 8, 16 s while the server is away): a restart that takes a few seconds on a busy machine
# can leave the next try 15 s away.
RECONNECT_TIMEOUT_MS = 45000


def _chromium_or_skip() -> str:
    if shutil.which(CHROMIUM):
        return CHROMIUM
    required = {name for name in os.environ.get("RETROCHAT_TEST_SERVICES", "").split(",") if name}
    if "browser" in required:
        pytest.fail(f"RETROCHAT_TEST_SERVICES names browser but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
def browser():
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _user(username: str):
    user = factories.make_user(username)
    user.set_password(PASSWORD)
    user.save()
    return user


def _room_presence_supported(server: LiveServer, key: str, room_id: int) -> bool:
    """Whether this server answers a room `activity` subscription (room presence) or INVALID_EVENT."""

    async def ask() -> dict:
        async with server.connect(key) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "channel": f"room:{room_id}", "event": "activity"}))
            return await recv_json(ws)

    reply = asyncio.run(ask())
    assert reply["type"] == "subscribed" or reply.get("code") == "INVALID_EVENT", reply
    return reply["type"] == "subscribed"


def _sign_in(browser, server: LiveServer, username: str, not_found: list[str]):
    """A signed-in page; every address it asks for that answers 404 goes to `not_found`."""
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("response", lambda response: response.status == 404 and not_found.append(response.url))
    page.goto(server.http_url + "/")
    expect(page).to_have_url(server.http_url + "/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(server.http_url) + r"/(#room_\d+)?$"))  # the page names the room it opened
    return page


# One page posts, edits or deletes; the other page's message list (`seen_by`) shows it live.

def _send(page, text: str, seen_by) -> None:
    from playwright.sync_api import expect

    page.get_by_role("textbox", name="Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()
    expect(seen_by).to_contain_text(text)


def _edit(page, text: str, new_text: str, seen_by) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name=f"Edit message: {text}").click()
    page.get_by_label("Edit message", exact=True).fill(new_text)  # not the other "Edit message: …" buttons
    page.get_by_role("button", name="Save").click()
    expect(seen_by.locator("li", has_text=new_text)).to_contain_text("(edited)")


def _delete(page, text: str, seen_by) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name=f"Delete message: {text}").click()
    expect(seen_by).not_to_contain_text(text)


@pytest.fixture
def world():
    """Users and a room, made before the browser starts (Playwright's sync API runs an event loop
    in this thread, where Django refuses database calls)."""
    ada, bob, cy = _user("ada"), _user("bob"), _user("cy")
    room = factories.make_room(ada, "lounge", members=(bob, cy))
    return {"room_id": room.pk, "cy_key": factories.make_key(cy)}


@pytest.fixture
def live(world):
    with LiveServer(RETROCHAT_WRITE_THROTTLE="off") as server:
        yield server


@pytest.fixture
def room_presence(world, live) -> bool:
    return _room_presence_supported(live, world["cy_key"], world["room_id"])


def test_two_users_chat_live_through_a_server_restart(world, live, room_presence, browser):
    from playwright.sync_api import expect

    server, room_id, cy_key = live, world["room_id"], world["cy_key"]
    not_found: list[str] = []
    ada_page, bob_page = _sign_in(browser, server, "ada", not_found), _sign_in(browser, server, "bob", not_found)
    for page in (ada_page, bob_page):
        page.get_by_role("button", name="# lounge").click()
        expect(page.get_by_role("heading", name="# lounge")).to_be_visible()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    bob_messages = bob_page.get_by_role("list", name="Messages")

    _send(ada_page, "Hello Bob", seen_by=bob_messages)
    _edit(ada_page, "Hello Bob", "Hello Bob, edited", seen_by=bob_messages)
    _delete(ada_page, "Hello Bob, edited", seen_by=bob_messages)

    states: list[str] = []
    bob_page.expose_function("recordState", lambda state: states.append(state))
    bob_page.evaluate(
        """() => new MutationObserver(() => window.recordState(document.getElementById("connection").dataset.state))
             .observe(document.getElementById("connection"), {attributes: true, attributeFilter: ["data-state"]})"""
    )
    server.restart()
    status, posted = server.request("POST", f"/v1/rooms/{room_id}/messages", cy_key, {"content": "Posted after the restart"})
    assert status == 201, posted

    expect(bob_messages).to_contain_text("Posted after the restart", timeout=RECONNECT_TIMEOUT_MS)
    expect(ada_page.get_by_role("list", name="Messages")).to_contain_text("Posted after the restart", timeout=RECONNECT_TIMEOUT_MS)
    expect(bob_page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert states[0] == "reconnecting" and states[-1] == "connected", states
    expect(bob_messages.locator("li")).to_have_count(1)  # nothing twice: the deleted one gone, the new one once

    if room_presence:
        expect(ada_page.locator("#online-list")).to_contain_text("Bob")
        expect(bob_page.locator("#online-list")).to_contain_text("Ada")
    else:  # a server without room presence: the page says so and everything else works
        expect(bob_page.locator("#presence-note")).to_be_visible()
    assert not_found == []  # no missing asset, no request to an address the server does not have


def test_two_users_start_a_direct_conversation_and_chat_in_it_live(world, live, browser):
    from playwright.sync_api import expect

    not_found: list[str] = []
    ada_page, bob_page = _sign_in(browser, live, "ada", not_found), _sign_in(browser, live, "bob", not_found)
    for page in (ada_page, bob_page):
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    ada_start, ada_error = ada_page.get_by_label("Message someone"), ada_page.locator("#conversations-error")

    bob_conversations = bob_page.get_by_role("navigation", name="Direct messages")
    expect(bob_conversations).to_contain_text("No conversations yet.")
    ada_start.fill("ada")
    ada_page.get_by_role("button", name="Start").click()
    expect(ada_error).to_have_text("That is you: a conversation needs someone else.")  # not sent to the server
    ada_start.fill("nobody")
    ada_page.get_by_role("button", name="Start").click()
    expect(ada_error).to_have_text('No user named "nobody" (a username, or an id such as user_12).')
    ada_start.fill("user_999999")
    ada_page.get_by_role("button", name="Start").click()
    expect(ada_error).to_have_text("No user with id 'user_999999'. (VALIDATION_ERROR)")  # the API's own words

    ada_start.fill("bob")
    ada_page.get_by_role("button", name="Start").click()
    expect(ada_page.get_by_role("heading", name="@ Bob")).to_be_visible()
    expect(ada_error).to_be_hidden()
    expect(ada_page.get_by_role("navigation", name="Direct messages").get_by_role("button", name="@ Bob")).to_be_visible()
    expect(ada_page).to_have_url(re.compile(r"#conv_\d+$"))
    ada_page.get_by_role("textbox", name="Message", exact=True).fill("Hi Bob, just us")
    ada_page.get_by_role("button", name="Send").click()  # before Bob has the conversation open

    bob_conversations.get_by_role("button", name="@ Ada").click()  # appeared live
    expect(bob_conversations).not_to_contain_text("No conversations yet.")
    expect(bob_page.get_by_role("heading", name="@ Ada")).to_be_visible()
    ada_messages, bob_messages = ada_page.get_by_role("list", name="Messages"), bob_page.get_by_role("list", name="Messages")
    expect(bob_messages).to_contain_text("Hi Bob, just us")

    _send(bob_page, "Hi Ada", seen_by=ada_messages)
    _send(ada_page, "Hello again", seen_by=bob_messages)
    _edit(ada_page, "Hi Bob, just us", "Hi Bob, only us", seen_by=bob_messages)
    _delete(bob_page, "Hi Ada", seen_by=ada_messages)
    expect(ada_messages.locator("li")).to_have_count(2)
    expect(bob_page.locator("#presence")).to_be_hidden()  # the online list is a room's, not a conversation's
    assert not_found == []
