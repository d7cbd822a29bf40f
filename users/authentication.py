"""DRF authentication by `Authorization: Bearer <api key>`."""
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users import keys
from users.models import ApiKey, User


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None  # not ours: session auth may still apply, else 401
        if len(header) != 2:
            raise exceptions.AuthenticationFailed()
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed() from None
        api_key = keys.verify(secret)
        if api_key is None:
            raise exceptions.AuthenticationFailed()
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="retrochat"'
