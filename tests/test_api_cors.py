"""REST: calls from pages on other origins (CORS_ALLOWED_ORIGINS)."""
import pytest

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"
FOREIGN = "https://evil.example.net"


@pytest.fixture(autouse=True)
def _allowed_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


def preflight(client, origin: str, path: str = "/v1/rooms"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(anon):
    response = preflight(anon, APP)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert response["Access-Control-Allow-Methods"] == "DELETE, GET, OPTIONS, PATCH, POST"
    assert "Access-Control-Allow-Credentials" not in response


def test_a_preflight_from_a_foreign_origin_gets_no_allow_origin(anon):
    response = preflight(anon, FOREIGN)

    assert "Access-Control-Allow-Origin" not in response


def test_a_bearer_call_from_an_allowed_origin_may_be_read_by_the_page(api):
    response = api.get("/v1/users/me", HTTP_ORIGIN=APP)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Expose-Headers"] == "Retry-After"


def test_a_bearer_call_from_a_foreign_origin_carries_no_allow_origin(api):
    response = api.get("/v1/users/me", HTTP_ORIGIN=FOREIGN)

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_an_error_answer_is_readable_by_an_allowed_origin(anon):
    response = anon.get("/v1/users/me", HTTP_ORIGIN=APP)

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == APP


def test_paths_outside_the_api_get_no_cors_headers(anon):
    response = preflight(anon, APP, path="/admin/")

    assert "Access-Control-Allow-Origin" not in response
