"""The web app in a real browser (Playwright driving Debian's chromium) against a real server.

Two users sign in at /login/ in two browser contexts and open the same room: one posts, edits and
deletes, the other sees each change live; the server restarts, a third party posts right after,
and the message arrives, nothing lost, while the connection indicator goes through reconnecting
back to connected; and each sees the other in the room's online list.

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

    ada_page.get_by_role("textbox", name="Message", exact=True).fill("Hello Bob")
    ada_page.get_by_role("button", name="Send").click()
    expect(bob_messages).to_contain_text("Hello Bob")

    ada_page.get_by_role("button", name="Edit message: Hello Bob").click()
    ada_page.get_by_label("Edit message").fill("Hello Bob, edited")
    ada_page.get_by_role("button", name="Save").click()
    expect(bob_messages.locator("li", has_text="Hello Bob, edited")).to_contain_text("(edited)")

    ada_page.get_by_role("button", name="Delete message: Hello Bob, edited").click()
    expect(bob_messages).not_to_contain_text("Hello Bob")

    states: list[str] = []
    bob_page.expose_function("recordState", lambda state: states.append(state))
    bob_page.evaluate(
        """() => new MutationObserver(() => window.recordState(document.getElementById("connection").dataset.state))
             .observe(document.getElementById("connection"), {attributes: true, attributeFilter: ["data-state"]})"""
    )
    server.restart()
    status, posted = server.request("POST", f"/v1/rooms/{room_id}/messages", cy_key, {"content": "Posted after the restart"})
    assert status == 201, posted

    expect(bob_messages).to_contain_text("Posted after the restart")
    expect(ada_page.get_by_role("list", name="Messages")).to_contain_text("Posted after the restart")
    expect(bob_page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert states[0] == "reconnecting" and states[-1] == "connected", states
    expect(bob_messages.locator("li")).to_have_count(1)  # nothing twice: the deleted one gone, the new one once

    if room_presence:
        expect(ada_page.locator("#online-list")).to_contain_text("Bob")
        expect(bob_page.locator("#online-list")).to_contain_text("Ada")
    else:  # a server without room presence: the page says so and everything else works
        expect(bob_page.locator("#presence-note")).to_be_visible()
    assert not_found == []  # no missing asset, no request to an address the server does not have
