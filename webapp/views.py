"""The web app at `/`: one page; everything after the first load goes through the REST API and the
WebSocket (webapp/static/webapp/app.js on the JavaScript client)."""
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from retrochat import ids
from retrochat.api.requests import AuthenticatedHttpRequest


@login_required
@ensure_csrf_cookie  # the page's REST writes send it back as X-CSRFToken
def index(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "webapp/index.html",
        {"user_id": ids.format_id(ids.USER, user.pk), "display_name": user.display_name or user.username},
    )
