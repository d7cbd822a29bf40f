"""`make run` (manage.py demo) prints the web app's address and sign-in passwords first."""
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

SIGN_IN_LINE = re.compile(r"^  (demo|alice|bob)\s+(\S+)$", re.MULTILINE)


def demo_output() -> str:
    out = StringIO()
    call_command("demo", "--host", "127.0.0.1", "--port", "8000", stdout=out)
    return out.getvalue()


def test_demo_prints_the_web_app_address_before_anything_else():
    output = demo_output()

    assert output.lstrip().startswith("RetroChat web app: http://127.0.0.1:8000/")


def test_the_printed_passwords_sign_in_at_the_web_app():
    passwords = dict(SIGN_IN_LINE.findall(demo_output()))

    assert set(passwords) == {"demo", "alice", "bob"}
    for username, password in passwords.items():
        client = Client()
        response = client.post("/login/", {"username": username, "password": password})
        assert (response.status_code, response["Location"]) == (302, "/")


def test_the_passwords_stay_the_same_across_restarts_so_browsers_stay_signed_in():
    first = dict(SIGN_IN_LINE.findall(demo_output()))
    client = Client()
    client.post("/login/", {"username": "demo", "password": first["demo"]})

    second = dict(SIGN_IN_LINE.findall(demo_output()))

    assert second == first
    assert client.get("/").status_code == 200
