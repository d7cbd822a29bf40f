"""Request types for views that only authenticated users reach (DRF's default permission is
IsAuthenticated; the web app's page is behind login_required): there `request.user` is a User,
never AnonymousUser.

For the type checker only: at run time these names are DRF's Request and Django's HttpRequest.
"""
from typing import TYPE_CHECKING

from django.http import HttpRequest
from rest_framework.request import Request

if TYPE_CHECKING:
    from users.models import User

    class AuthenticatedRequest(Request):
        user: User  # narrows `User | AnonymousUser`

    class AuthenticatedHttpRequest(HttpRequest):
        user: User
else:
    AuthenticatedRequest = Request
    AuthenticatedHttpRequest = HttpRequest
