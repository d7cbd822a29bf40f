"""REST: users, API keys and the behaviour every endpoint shares."""
import re
from datetime import UTC, datetime

import pytest
from django.core.cache import cache

from tests import factories
from tests.support import api_client, validation_error
from users import services
from users.models import ApiKey

ME = "/v1/users/me"
KEYS = "/v1/api-keys"
NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found."}
UNAUTHORIZED = {
    "code": "UNAUTHORIZED",
    "message": "Authentication credentials were not provided or are not valid.",
}
KEY_FORMAT = re.compile(r"rc_[A-Za-z0-9_-]{32,}")
KEY_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}


def profile(user, **changes) -> dict:
    return {
        "id": f"user_{user.pk}",
        "username": user.username,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "status": "offline",
        "last_seen_at": None,
        **changes,
    }


# --- /v1/users/me ------------------------------------------------------------------------------


def test_me_returns_my_profile(api, user):
    response = api.get(ME)

    assert response.status_code == 200
    assert response.json() == {
        "id": f"user_{user.pk}",
        "username": "ada",
        "display_name": "Ada",
        "avatar_url": "",
        "status": "offline",
        "last_seen_at": None,
    }


def test_me_requires_authentication(anon, db):
    response = anon.get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_patch_me_changes_display_name(api, user):
    response = api.patch(ME, {"display_name": "Ada Lovelace"}, format="json")

    assert response.status_code == 200
    assert response.json() == profile(user, display_name="Ada Lovelace")
    user.refresh_from_db()
    assert user.display_name == "Ada Lovelace"


def test_patch_me_changes_avatar_url(api, user):
    response = api.patch(ME, {"avatar_url": "https://example.com/ada.png"}, format="json")

    assert response.status_code == 200
    assert response.json() == profile(user, avatar_url="https://example.com/ada.png")
    user.refresh_from_db()
    assert user.avatar_url == "https://example.com/ada.png"


def test_patch_me_clears_avatar_url_with_an_empty_string(api, user):
    user.avatar_url = "https://example.com/ada.png"
    user.save(update_fields=["avatar_url"])

    response = api.patch(ME, {"avatar_url": ""}, format="json")

    assert response.status_code == 200
    assert response.json()["avatar_url"] == ""
    user.refresh_from_db()
    assert user.avatar_url == ""


def test_patch_me_with_an_empty_body_changes_nothing(api, user):
    response = api.patch(ME, {}, format="json")

    assert response.status_code == 200
    assert response.json() == profile(user)


def test_patch_me_cannot_change_username(api, user):
    response = api.patch(ME, {"username": "root"}, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(username=["Unknown field."])
    user.refresh_from_db()
    assert user.username == "ada"


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"display_name": 123}, {"display_name": ["Must be a string."]}),
        ({"display_name": None}, {"display_name": ["This field may not be null."]}),
        ({"display_name": ["Ada"]}, {"display_name": ["Must be a string."]}),
        ({"display_name": ""}, {"display_name": ["This field may not be blank."]}),
        ({"display_name": "   "}, {"display_name": ["This field may not be blank."]}),
        ({"display_name": "x" * 101}, {"display_name": ["Ensure this field has no more than 100 characters."]}),
        ({"display_name": "Ada\x00"}, {"display_name": ["Null characters are not allowed."]}),
        ({"display_name": "\u3164"}, {"display_name": ["This field may not be blank."]}),
        ({"display_name": "\u200b\u200d"}, {"display_name": ["This field may not be blank."]}),
        ({"display_name": "Ada\nLovelace"}, {"display_name": ["Line breaks and control characters are not allowed."]}),
        ({"display_name": "Ada\x1b[2J"}, {"display_name": ["Line breaks and control characters are not allowed."]}),
        ({"display_name": "A\x85da"}, {"display_name": ["Line breaks and control characters are not allowed."]}),
        ({"display_name": "\u202eadA"}, {"display_name": ["Bidirectional override and isolate characters are not allowed."]}),
        ({"display_name": "Ada\u2067x"}, {"display_name": ["Bidirectional override and isolate characters are not allowed."]}),
        ({"avatar_url": "not a url"}, {"avatar_url": ["Enter a valid URL."]}),
        ({"avatar_url": 42}, {"avatar_url": ["Must be a string."]}),
        ({"nickname": "ada"}, {"nickname": ["Unknown field."]}),
    ],
    ids=[
        "display_name-number",
        "display_name-null",
        "display_name-list",
        "display_name-blank",
        "display_name-whitespace",
        "display_name-too-long",
        "display_name-nul-char",
        "display_name-hangul-filler",
        "display_name-zero-width-only",
        "display_name-newline",
        "display_name-escape",
        "display_name-c1",
        "display_name-rlo",
        "display_name-isolate",
        "avatar_url-not-a-url",
        "avatar_url-number",
        "unknown-field",
    ],
)
def test_patch_me_rejects_invalid_input(api, user, body, details):
    response = api.patch(ME, body, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(**details)
    user.refresh_from_db()
    assert (user.display_name, user.avatar_url) == ("Ada", "")


def test_patch_me_rejects_a_lone_surrogate(api, user):
    response = api.patch(ME, data='{"display_name": "Ada \\ud800"}', content_type="application/json")

    assert response.status_code == 400
    assert response.json() == validation_error(display_name=["Surrogate characters are not allowed: U+D800."])
    user.refresh_from_db()
    assert user.display_name == "Ada"


def test_patch_me_accepts_exactly_100_characters(api, user):
    response = api.patch(ME, {"display_name": "x" * 100}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "x" * 100


def test_patch_me_with_a_json_array_is_a_validation_error(api, user):
    response = api.patch(ME, [], format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(non_field_errors=["Invalid data. Expected a dictionary, but got list."])


# --- /v1/users/{id} ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["{pk}", "user_{pk}"], ids=["bare", "prefixed"])
def test_get_user_by_bare_or_prefixed_id(api, other_user, form):
    response = api.get(f"/v1/users/{form.format(pk=other_user.pk)}")

    assert response.status_code == 200
    assert response.json() == {
        "id": f"user_{other_user.pk}",
        "username": "bob",
        "display_name": "Bob",
        "avatar_url": "",
        "status": "offline",
        "last_seen_at": None,
    }


def test_get_unknown_user_is_not_found(api, user):
    response = api.get(f"/v1/users/user_{user.pk + 1000}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("raw_id", ["user_x", "user_", "0", "007", "-3", "room_3", "3.0", "user_3x", "１", "1" + "0" * 18])
def test_get_user_with_malformed_id_is_not_found(api, user, raw_id):
    response = api.get(f"/v1/users/{raw_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_get_user_with_the_largest_accepted_id_is_not_found(api, user):
    response = api.get("/v1/users/user_" + "9" * 18)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_get_user_requires_authentication(anon, other_user):
    response = anon.get(f"/v1/users/{other_user.pk}")

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


# --- /v1/api-keys ------------------------------------------------------------------------------


def test_create_key_answers_the_secret_once(api, user):
    response = api.post(KEYS, {"name": "laptop"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "expires_at", "key"}
    api_key = ApiKey.objects.get(user=user, name="laptop")
    assert body["id"] == f"key_{api_key.pk}"
    assert body["name"] == "laptop"
    assert body["expires_at"] is None
    assert KEY_FORMAT.fullmatch(body["key"]), body["key"]
    assert body["prefix"] == body["key"][:11] == api_key.prefix
    assert body["created_at"].endswith("Z")


def test_create_key_with_a_future_expiry(api, user):
    response = api.post(KEYS, {"name": "temp", "expires_at": "2999-01-01T00:00:00Z"}, format="json")

    assert response.status_code == 201
    assert response.json()["expires_at"] == "2999-01-01T00:00:00Z"


def test_created_key_authenticates(api, user):
    secret = api.post(KEYS, {"name": "laptop"}, format="json").json()["key"]

    response = api_client(secret).get(ME)

    assert response.status_code == 200
    assert response.json()["id"] == f"user_{user.pk}"


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"name": "old", "expires_at": "2000-01-01T00:00:00Z"}, {"expires_at": ["Must be in the future."]}),
        ({"name": "x", "expires_at": "tomorrow"}, {"expires_at": ["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]}),
        ({}, {"name": ["This field is required."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": 7}, {"name": ["Must be a string."]}),
        ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
        ({"name": "ci", "scopes": ["read"]}, {"scopes": ["Unknown field."]}),
        ({"name": "ci", "key": "rc_" + "A" * 43}, {"key": ["Unknown field."]}),
    ],
    ids=["expiry-in-the-past", "expiry-not-a-date", "name-missing", "name-blank", "name-number", "name-too-long", "unknown-field", "chosen-secret"],
)
def test_create_key_rejects_invalid_input(api, user, body, details):
    keys_before = ApiKey.objects.count()

    response = api.post(KEYS, body, format="json")

    assert response.status_code == 400
    assert response.json() == validation_error(**details)
    assert ApiKey.objects.count() == keys_before


def test_list_keys_shows_mine_newest_first_without_secrets(user, other_user):
    first, first_secret = services.api_key_create(user=user, name="first")
    second, second_secret = services.api_key_create(user=user, name="second")
    _, others_secret = services.api_key_create(user=other_user, name="bob's")

    response = api_client(second_secret).get(KEYS)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert body["previous"] is None
    assert [item["id"] for item in body["results"]] == [f"key_{second.pk}", f"key_{first.pk}"]
    assert [item["name"] for item in body["results"]] == ["second", "first"]
    assert all(set(item) == KEY_FIELDS for item in body["results"])
    assert [item["prefix"] for item in body["results"]] == [second_secret[:11], first_secret[:11]]
    for secret in (first_secret, second_secret, others_secret):
        assert secret.encode() not in response.content


def test_delete_key_revokes_it(user):
    api_key, secret = services.api_key_create(user=user, name="doomed")
    client = api_client(factories.make_key(user))

    response = client.delete(f"{KEYS}/key_{api_key.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert api_client(secret).get(ME).status_code == 401
    listed = [item["id"] for item in client.get(KEYS).json()["results"]]
    assert f"key_{api_key.pk}" not in listed


def test_delete_key_accepts_a_bare_id(user):
    api_key, secret = services.api_key_create(user=user, name="doomed")

    response = api_client(factories.make_key(user)).delete(f"{KEYS}/{api_key.pk}")

    assert response.status_code == 204
    assert api_client(secret).get(ME).status_code == 401


def test_a_key_can_revoke_itself(user):
    api_key, secret = services.api_key_create(user=user, name="self")
    client = api_client(secret)

    assert client.delete(f"{KEYS}/key_{api_key.pk}").status_code == 204

    response = client.get(ME)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_deleting_another_users_key_is_not_found_and_keeps_it(api, other_user):
    api_key, secret = services.api_key_create(user=other_user, name="bob's")

    response = api.delete(f"{KEYS}/key_{api_key.pk}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert api_client(secret).get(ME).status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_deleting_an_unknown_key_is_not_found(api, user):
    response = api.delete(f"{KEYS}/key_999999")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- Shared behaviour --------------------------------------------------------------------------


def test_body_that_is_not_json_is_invalid_json(api, user):
    response = api.patch(ME, data="{not json", content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "INVALID_JSON"
    assert body["message"].startswith("JSON parse error")
    user.refresh_from_db()
    assert user.display_name == "Ada"


def test_form_encoded_body_is_unsupported_media_type(api, user):
    response = api.post(KEYS, {"name": "laptop"}, format="multipart")

    assert response.status_code == 415
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert not ApiKey.objects.filter(name="laptop").exists()


def test_post_that_is_not_json_is_invalid_json(api, user):
    response = api.post(KEYS, data="name=laptop", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_JSON"
    assert not ApiKey.objects.filter(name="laptop").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", ME), ("put", ME), ("post", ME), ("patch", KEYS), ("get", f"{KEYS}/key_1")],
    ids=["DELETE-me", "PUT-me", "POST-me", "PATCH-api-keys", "GET-api-key"],
)
def test_wrong_method_is_method_not_allowed(api, user, method, path):
    response = getattr(api, method)(path, format="json")

    assert response.status_code == 405
    assert response.json() == {"code": "METHOD_NOT_ALLOWED", "message": f'Method "{method.upper()}" not allowed.'}


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/users/me/", "/v1/users/", "/v1/", "/v1"])
def test_unknown_v1_path_is_json_not_found(api, user, path):
    response = api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


def test_unknown_v1_path_is_json_not_found_without_credentials(anon, db):
    response = anon.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- Write throttling --------------------------------------------------------------------------


@pytest.fixture
def write_limit_of_three(settings):
    cache.clear()
    settings.RETROCHAT_WRITE_THROTTLE = "3/min"


def test_fourth_write_in_a_minute_is_rate_limited(write_limit_of_three, api, user):
    for name in ("one", "two", "three"):
        assert api.patch(ME, {"display_name": name}, format="json").status_code == 200

    response = api.patch(ME, {"display_name": "four"}, format="json")

    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.json() == {
        "code": "RATE_LIMITED",
        "message": "Too many writes; retry after the number of seconds in Retry-After.",
        "details": {"retry_after": retry_after},
    }
    user.refresh_from_db()
    assert user.display_name == "three"


def test_writes_are_counted_across_endpoints(write_limit_of_three, api, user):
    assert api.patch(ME, {"display_name": "one"}, format="json").status_code == 200
    assert api.post(KEYS, {"name": "two"}, format="json").status_code == 201
    assert api.patch(ME, {"display_name": "three"}, format="json").status_code == 200

    response = api.post(KEYS, {"name": "four"}, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert not ApiKey.objects.filter(name="four").exists()


def test_reads_are_not_throttled(write_limit_of_three, api, user):
    for name in ("one", "two", "three"):
        assert api.patch(ME, {"display_name": name}, format="json").status_code == 200

    for _ in range(10):
        assert api.get(ME).status_code == 200
    assert api.get(KEYS).status_code == 200


def test_write_throttle_is_per_user(write_limit_of_three, api, user, other_user, client_for):
    for name in ("one", "two", "three"):
        assert api.patch(ME, {"display_name": name}, format="json").status_code == 200
    assert api.patch(ME, {"display_name": "four"}, format="json").status_code == 429

    response = client_for(other_user).patch(ME, {"display_name": "Robert"}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Robert"


def test_throttle_off_allows_many_writes(api, user, settings):
    cache.clear()
    settings.RETROCHAT_WRITE_THROTTLE = None

    for index in range(10):
        assert api.patch(ME, {"display_name": f"name {index}"}, format="json").status_code == 200


# --- GET /v1/users?ids=… | ?search=… ---------------------------------------------------------------


USERS = "/v1/users"
EITHER = {"non_field_errors": ["Give either ids or search (exactly one)."]}


def test_users_by_ids_in_the_order_given_in_either_form(api, user, other_user, third_user):
    response = api.get(USERS, {"ids": f"user_{third_user.pk},{user.pk}"})

    assert response.status_code == 200
    assert response.json() == {"results": [profile(third_user), profile(user)], "next": None, "previous": None}


def test_users_by_ids_leave_out_unknown_ids_and_repeats(api, user, other_user):
    response = api.get(USERS, {"ids": f"user_{other_user.pk}, user_987654,user_{other_user.pk}"})

    assert response.json() == {"results": [profile(other_user)], "next": None, "previous": None}


def test_users_by_ids_carry_presence(api, user, other_user):
    other_user.last_seen_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    other_user.save(update_fields=["last_seen_at"])

    response = api.get(USERS, {"ids": f"user_{other_user.pk}"})

    assert response.json()["results"] == [profile(other_user, last_seen_at="2026-01-02T03:04:05Z")]


def test_a_hundred_ids_are_accepted(api, user):
    response = api.get(USERS, {"ids": ",".join(str(pk) for pk in range(1, 101))})

    assert response.status_code == 200


def test_more_than_a_hundred_ids_are_rejected(api, user):
    response = api.get(USERS, {"ids": ",".join(str(pk) for pk in range(1, 102))})

    assert response.status_code == 400
    assert response.json() == validation_error(ids=["At most 100 ids."])


@pytest.mark.parametrize("ids", ["user_x", "1,,2", "room_1", "0", "1;2"])
def test_malformed_ids_are_rejected(api, user, ids):
    response = api.get(USERS, {"ids": ids})

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["ids"]
    assert response.json()["details"]["ids"][0].startswith("Not valid user ids: ")


def test_ids_are_one_page_so_limit_is_rejected(api, user):
    response = api.get(USERS, {"ids": f"user_{user.pk}", "limit": "10"})

    assert response.status_code == 400
    assert response.json() == validation_error(limit=["Not used with ids: the answer holds every user asked for."])


def test_search_matches_username_or_display_name_ignoring_case_newest_first(api, user, other_user, third_user):
    grace = services.user_create(username="grace", display_name="Grace Hopper")
    hopper = factories.make_user("hopper_fan")

    response = api.get(USERS, {"search": "HOPPER"})

    assert response.status_code == 200
    assert response.json() == {"results": [profile(hopper), profile(grace)], "next": None, "previous": None}


def test_search_is_paginated(api, user):
    bots = [factories.make_user(f"bot{n}") for n in range(3)]

    first = api.get(USERS, {"search": "bot", "limit": 2}).json()
    second = api.get(first["next"]).json()

    assert [u["id"] for u in first["results"] + second["results"]] == [f"user_{b.pk}" for b in reversed(bots)]
    assert second["next"] is None


@pytest.mark.parametrize("query", [{}, {"ids": "1", "search": "ada"}], ids=["neither", "both"])
def test_exactly_one_of_ids_and_search_is_required(api, user, query):
    response = api.get(USERS, query)

    assert response.status_code == 400
    assert response.json() == validation_error(**EITHER)


def test_a_blank_search_is_rejected(api, user):
    response = api.get(USERS, {"search": "  "})

    assert response.status_code == 400
    assert response.json() == validation_error(search=["This field may not be blank."])


def test_the_user_list_rejects_unknown_query_parameters(api, user):
    response = api.get(USERS, {"search": "ada", "sort": "name"})

    assert response.status_code == 400
    assert response.json() == validation_error(sort=["Unknown query parameter."])


def test_the_user_list_requires_authentication(anon, db):
    response = anon.get(USERS, {"search": "ada"})

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
