"""The web app's pages: sign-in and sign-out with Django's auth views, the page at `/`, and the
JavaScript client published as a static file (the page's behaviour: tests/test_browser.py)."""
import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ada():
    user = factories.make_user("ada")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_the_page_sends_a_visitor_who_is_not_signed_in_to_the_sign_in_form():
    response = Client().get("/")

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/")


def test_the_sign_in_form_labels_its_fields():
    body = Client().get("/login/").content.decode()

    assert '<label for="id_username">Username</label>' in body
    assert '<label for="id_password">Password</label>' in body
    assert '<main id="main"' in body


def test_a_normal_user_signs_in_and_lands_on_the_page(ada):
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")

    response = client.post(
        "/login/", {"username": "ada", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )

    assert (response.status_code, response["Location"]) == (302, "/")
    page = client.get("/")
    assert page.status_code == 200
    assert f'data-user-id="user_{ada.pk}"' in page.content.decode()


def test_a_wrong_password_shows_the_form_again_with_an_alert(ada):
    response = Client().post("/login/", {"username": "ada", "password": "nope"})

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_an_inactive_user_cannot_sign_in(ada):
    ada.is_active = False
    ada.save()
    client = Client()

    response = client.post("/login/", {"username": "ada", "password": PASSWORD})

    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_signing_out_ends_the_session_and_returns_to_the_page(ada):
    client = Client()
    client.force_login(ada)

    response = client.post("/logout/")

    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/")["Location"] == "/login/?next=/"


def test_the_page_loads_the_app_as_a_module_and_sets_the_csrf_cookie(ada):
    client = Client()
    client.force_login(ada)

    response = client.get("/")

    assert '<script type="module" src="/static/webapp/app.js"></script>' in response.content.decode()
    assert "csrftoken" in response.cookies


def test_the_page_lists_rooms_and_direct_messages_under_their_headings_with_a_labelled_start_form(ada):
    client = Client()
    client.force_login(ada)

    body = client.get("/").content.decode()

    assert '<nav class="rooms" aria-labelledby="rooms-heading">' in body
    assert '<nav class="rooms" aria-labelledby="conversations-heading">' in body
    assert '<h2 id="conversations-heading">Direct messages</h2>' in body
    assert '<label for="new-conversation-user">Message someone</label>' in body


def test_the_javascript_client_is_published_as_a_static_file_and_nothing_else_of_its_folder():
    assert finders.find("retrochat.js").endswith("clients/js/retrochat.js")
    assert finders.find("retrochat.d.ts").endswith("clients/js/retrochat.d.ts")
    assert not finders.find("package.json")
    assert not finders.find("test/server.js")
